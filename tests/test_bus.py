"""The bus client against a real broker: persistence, last will, manual ack, error reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from homesec.bus import Message, PayloadTooLarge
from homesec.contract import Role, Topics, TrainRequest, parse
from tests.helpers import wait_until
from tests.mqtt_helpers import Broker, Collector

T = Topics()
REPO = Path(__file__).parent.parent


def test_qos1_message_sent_while_subscriber_offline_arrives_after_reconnect(broker: Broker) -> None:
    got: list[bytes] = []
    arrived = threading.Event()

    def on_result(msg: Message) -> None:
        got.append(msg.payload)
        arrived.set()

    # connected: the SUBACK is in, the session holds the subscription
    node = broker.connected(Role.NOTIFIER, "notifier/offline-test", (T.all_alerts, on_result))
    node.stop()  # leaves; its persistent session stays on the broker

    rec = broker.connected(Role.RECOGNIZER, "recognizer/offline-test")
    assert rec.publish_confirmed(T.alert("door"), b"while-you-were-away")
    rec.stop()

    again = broker.bus(Role.NOTIFIER, "notifier/offline-test")
    again.subscribe(T.all_alerts, on_result)
    again.start()
    try:
        assert arrived.wait(10), "the queued message never arrived"
        assert got == [b"while-you-were-away"]
    finally:
        again.stop()


NODE_SCRIPT = """
import sys, time, threading
from pydantic import SecretStr
from homesec.bus import MqttBus
from homesec.settings import MqttSettings
s = MqttSettings(host="127.0.0.1", port=int(sys.argv[1]), username="recognizer",
                 password=SecretStr(sys.argv[2]), keepalive_s=5)
bus = MqttBus(s, node="recognizer/victim")
def slow(msg):
    print("GOT", msg.payload.decode(), flush=True)
    time.sleep(3600)  # dies here, mid-work, before the ack
bus.subscribe(bus.topics.shared_snapshots, slow)
bus.start()
bus.wait_connected(10)
print("READY", flush=True)
time.sleep(3600)
"""


def _spawn_node(broker: Broker) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", NODE_SCRIPT, str(broker.port), broker.files.passwords["recognizer"]],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def test_killed_node_goes_offline_and_unacked_work_is_redelivered(broker: Broker) -> None:
    watch = Collector(broker, T.available("recognizer/victim"))
    proc = _spawn_node(broker)
    try:
        watch.wait_for(lambda m: m.payload == b"online")
        cam = broker.connected(Role.CAMERA, "camera/door")
        assert cam.publish_confirmed(T.snapshot("door"), b"snap-1")
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "GOT snap-1"
        os.kill(proc.pid, signal.SIGKILL)  # crash mid-work: no ack was sent
        proc.wait(10)
        watch.wait_for(lambda m: m.payload == b"offline", timeout=20)

        redelivered = threading.Event()
        heir = broker.bus(Role.RECOGNIZER, "recognizer/victim")  # same client id: same session
        heir.subscribe(T.shared_snapshots, lambda m: redelivered.set() if m.payload == b"snap-1" else None)
        heir.start()
        assert redelivered.wait(20), "the message being worked on when the node died was lost"
        heir.stop()
        cam.stop()
    finally:
        proc.kill()
        watch.close()


def test_clean_exit_says_stopped(broker: Broker) -> None:
    watch = Collector(broker, T.available("notifier/clean"))
    node = broker.bus(Role.NOTIFIER, "notifier/clean")
    node.start()
    watch.wait_for(lambda m: m.payload == b"online")
    node.stop()
    watch.wait_for(lambda m: m.payload == b"stopped")
    watch.close()


def test_raising_handler_and_bad_payload_are_reported_and_later_messages_still_handled(
    broker: Broker,
) -> None:
    handled: list[str] = []
    done = threading.Event()

    def on_train(msg: Message) -> None:
        req = parse(TrainRequest, msg.payload)  # ContractError on bad JSON -> error topic
        if req.label == "boom":
            raise RuntimeError("exploded")
        handled.append(req.label)
        done.set()

    errors = Collector(broker, T.error("recognizer/errs"))
    node = broker.connected(Role.RECOGNIZER, "recognizer/errs", (T.train, on_train))
    admin = broker.connected(Role.ADMIN, "admin/test")
    try:
        admin.publish(T.train, b"{not json")
        admin.publish(T.train, TrainRequest(label="boom", image_b64=""))
        admin.publish(T.train, TrainRequest(label="alice", image_b64=""))
        assert done.wait(10)
        assert handled == ["alice"]
        first = json.loads(errors.topic(T.error("recognizer/errs")).payload)
        second = json.loads(errors.topic(T.error("recognizer/errs")).payload)
        assert first["error"] == "bad_payload" and "not JSON" in first["detail"]
        assert first["topic"] == T.train and first["v"] == 1
        assert second["error"] == "handler_failed" and "exploded" in second["detail"]
    finally:
        admin.stop()
        node.stop()
        errors.close()


def test_node_reconnects_after_the_broker_restarts(fresh_broker: Broker) -> None:
    node = fresh_broker.connected(Role.CAMERA, "camera/door")
    fresh_broker.stop()
    wait_until(lambda: not node.connected, timeout=10)
    assert not node.publish_confirmed(T.motion("door"), b"{}", timeout=1)
    fresh_broker.start()
    assert node.wait_connected(15)
    assert node.publish_confirmed(T.motion("door"), b"{}")
    node.stop()


def test_confirmed_publishes_from_several_threads_all_get_their_ack(broker: Broker) -> None:
    """Regression: holding our lock around paho's publish() deadlocked against its network thread."""
    node = broker.connected(Role.CAMERA, "camera/many")
    results: list[bool] = []

    def burst() -> None:
        results.extend(node.publish_confirmed(T.motion("many"), b"{}", timeout=10) for _ in range(150))

    threads = [threading.Thread(target=burst) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    node.stop()
    assert len(results) == 450 and all(results)


def test_an_oversized_publish_is_refused_here_and_the_connection_survives(broker: Broker) -> None:
    """The broker drops a client that sends more than max_packet_size, and paho would resend the same
    message after every reconnect: a loop. So the bus refuses it before it is queued."""
    import pytest

    node = broker.connected(Role.CAMERA, "camera/big")
    with pytest.raises(PayloadTooLarge, match="max_payload_mb"):
        node.publish_confirmed(T.snapshot("big"), b"x" * (16 * 1024 * 1024))
    with pytest.raises(PayloadTooLarge):
        node.publish(T.snapshot("big"), b"x" * (16 * 1024 * 1024))
    assert node.connected  # nothing was sent, so the broker had no reason to drop us
    assert node.publish_confirmed(T.snapshot("big"), b"\xff\xd8 a normal snapshot")
    node.stop()
