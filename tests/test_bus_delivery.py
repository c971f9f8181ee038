"""What the bus hands to handlers across reconnects, and how a handler says "not now"."""

from __future__ import annotations

import errno
import threading
from collections import Counter

from homesec.bus import Message, MqttBus, RetryLater
from homesec.contract import Role, Topics
from tests.helpers import LocalBus, wait_until
from tests.mqtt_helpers import Broker, Collector

T = Topics()


def test_messages_of_a_lost_connection_are_dropped_not_handled_twice(fresh_broker: Broker) -> None:
    """The broker redelivers what was never acknowledged: handling the old copies too doubled the work."""
    seen: Counter[bytes] = Counter()
    gate = threading.Event()

    def handle(msg: Message) -> None:
        seen[msg.payload] += 1
        if msg.payload == b"0":
            gate.wait(30)  # busy while the rest queue up behind it and the broker restarts

    node = fresh_broker.connected(Role.NOTIFIER, "notifier/stale", (T.all_alerts, handle))
    pub = fresh_broker.connected(Role.RECOGNIZER, "recognizer/stale-pub")
    try:
        for i in range(5):
            assert pub.publish_confirmed(T.alert("door"), str(i).encode())
        wait_until(lambda: node._inbox.unfinished_tasks == 5, 10)  # all five reached the node
        fresh_broker.stop()  # persisted on a clean stop: the session and its in-flight messages survive
        wait_until(lambda: not node.connected, 10)
        fresh_broker.start()
        assert node.wait_connected(20) and pub.wait_connected(20)
        gate.set()
        assert pub.publish_confirmed(T.alert("door"), b"end")
        wait_until(lambda: seen[b"end"] == 1, 20)
        assert [seen[str(i).encode()] for i in range(1, 5)] == [1, 1, 1, 1]
        assert seen[b"0"] >= 1  # the one being handled when the connection went: at least once
    finally:
        gate.set()
        node.stop()
        pub.stop()


def test_messages_of_a_session_the_broker_forgot_are_handled_once() -> None:
    """Dropped only when they come again: a broker that lost the session never redelivers them."""
    seen: Counter[bytes] = Counter()
    gate = threading.Event()

    def handle(msg: Message) -> None:
        seen[msg.payload] += 1
        if msg.payload == b"0":
            gate.wait(10)

    bus = LocalBus("notifier/forgotten")
    bus.subscribe(T.all_alerts, handle)
    for i in range(3):
        bus.broker.publish(T.alert("door"), str(i).encode())
    wait_until(lambda: seen[b"0"] == 1 and bus._inbox.unfinished_tasks == 3)
    bus.broker.stop(forget=True)  # no persistence: the session and its in-flight messages are gone
    wait_until(lambda: not bus.connected)
    bus.broker.start()
    assert bus.wait_connected(10)
    gate.set()
    bus.drain()
    assert seen == {b"0": 1, b"1": 1, b"2": 1}


def test_retry_later_leaves_the_message_unacked_reports_it_and_handles_it_after_a_backoff(
    broker: Broker,
) -> None:
    attempts: Counter[bytes] = Counter()
    handled: list[bytes] = []

    def handle(msg: Message) -> None:
        attempts[msg.payload] += 1
        if msg.payload == b"full" and attempts[msg.payload] <= 2:
            raise RetryLater("disk full")
        handled.append(msg.payload)

    errors = Collector(broker, T.error("notifier/retry"))
    node = broker.connected(Role.NOTIFIER, "notifier/retry", (T.all_alerts, handle), retry_s=(0.1, 60.0))
    pub = broker.connected(Role.RECOGNIZER, "recognizer/retry-pub")
    try:
        assert pub.publish_confirmed(T.alert("door"), b"full")
        assert pub.publish_confirmed(T.alert("door"), b"next")
        wait_until(lambda: b"full" in handled, 10)
        assert handled == [b"next", b"full"]  # the next one did not wait behind the retries
        assert attempts[b"full"] == 3
        report = errors.wait_for(lambda m: b"retry_later" in m.payload)
        assert b"disk full" in report.payload
        node.stop()

        # Acknowledged once handled: a new connection of the same session gets nothing again.
        again = broker.connected(Role.NOTIFIER, "notifier/retry", (T.all_alerts, handle))
        assert pub.publish_confirmed(T.alert("door"), b"end")
        wait_until(lambda: b"end" in handled, 10)
        again.stop()
        assert handled == [b"next", b"full", b"end"]
    finally:
        pub.stop()
        errors.close()


def test_a_retried_message_not_yet_handled_is_redelivered_after_a_restart(broker: Broker) -> None:
    def refuse(msg: Message) -> None:
        raise RetryLater("not now")

    node = broker.connected(
        Role.NOTIFIER, "notifier/retry-restart", (T.all_alerts, refuse), retry_s=(0.1, 0.2)
    )
    pub = broker.connected(Role.RECOGNIZER, "recognizer/retry-restart-pub")
    try:
        assert pub.publish_confirmed(T.alert("door"), b"pending")
        wait_until(lambda: node._retries.pending() >= 1, 10)
        node.stop()
        got = threading.Event()
        again = MqttBus(broker.settings(Role.NOTIFIER), node="notifier/retry-restart")
        again.subscribe(T.all_alerts, lambda m: got.set() if m.payload == b"pending" else None)
        again.start()
        assert got.wait(10), "a message a handler deferred was acknowledged anyway"
        again.stop()
    finally:
        pub.stop()


def test_a_full_disk_counts_as_retry_later() -> None:
    tries: list[int] = []

    def handle(msg: Message) -> None:
        tries.append(1)
        if len(tries) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")

    bus = LocalBus(retry_s=(0.01, 0.01))
    bus.subscribe(T.all_alerts, handle)
    bus.inject(T.alert("door"), b"x")
    wait_until(lambda: len(tries) == 2, 5)
    assert [e.error for e in bus.errors] == ["retry_later"]


def test_other_failures_are_reported_and_acknowledged() -> None:
    def handle(msg: Message) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    bus = LocalBus()
    bus.subscribe(T.all_alerts, handle)
    bus.inject(T.alert("door"), b"x")
    assert [e.error for e in bus.errors] == ["handler_failed"]
    assert bus._retries.pending() == 0
