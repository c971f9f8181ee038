"""Test helpers around a real mosquitto process and real MQTT clients."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from homesec.broker import Account, BrokerFiles, MosquittoProcess, free_port, prepare_local_broker, rules_for
from homesec.bus import Handler, Message, MqttBus
from homesec.config import node_client_id
from homesec.contract import Role, Topics
from homesec.settings import MqttSettings
from tests.helpers import TIME_SCALE


def harness_accounts(prefix: str) -> list[Account]:
    """Accounts of the test harness, besides the deployment's own: the bare role names stand for any
    instance of their role with any client id (the node packages' tests use them; the recognizer one
    also publishes under its whole tree and joins any shared group, for the bus conformance tests), and
    the observer sees everything."""
    t = Topics(prefix)
    recognizer = rules_for(Account("recognizer", Role.RECOGNIZER, "+"), t)
    recognizer += [
        (True, "publish", f"{prefix}/recognizer/#"),
        (True, "subscribe", f"$share/+/{t.all_snapshots}"),
    ]
    return [
        Account("camera", Role.CAMERA, "+", bind=False),
        Account("recognizer", Role.RECOGNIZER, "+", bind=False, rules=tuple(recognizer)),
        Account("notifier", Role.NOTIFIER, "+", bind=False),
        Account("observer", Role.VIEWER, rules=((True, "subscribe", "#"),)),
        Account("publisher", Role.ADMIN, rules=((True, "publish", "#"),)),
    ]


CAMERAS = ("door", "gate")
RECOGNIZERS = ("main", "r2")


class Broker:
    """A real mosquitto on a free port, with the project's generated config and accounts (those of
    `homesec broker init` for cameras door and gate and recognizers main and r2) plus the harness's."""

    def __init__(self, directory: Path, prefix: str = "homesec", group: str | None = "recognizer") -> None:
        self.directory = directory
        self.port = free_port()
        self.files: BrokerFiles = prepare_local_broker(
            directory,
            self.port,
            prefix=prefix,
            cameras=CAMERAS,
            recognizers=RECOGNIZERS,
            extra=harness_accounts(prefix),
            group=group,
        )
        self.process = MosquittoProcess(self.files.conf, self.port, directory / "mosquitto.log")

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def log(self) -> str:
        return (self.directory / "mosquitto.log").read_text(errors="replace")

    def client_id(self, user: str) -> str | None:
        """The client id a bound user must connect with (None: any)."""
        account = next(a for a in self.files.accounts if a.user == user)
        return node_client_id(user, self.files.passwords[user]) if account.bound else None

    def settings(self, role: Role | str, **overrides: object) -> MqttSettings:
        base = MqttSettings(
            host="127.0.0.1",
            port=self.port,
            username=str(role),
            password=SecretStr(self.files.passwords[str(role)]),
            share_group=SecretStr(self.files.group),
            keepalive_s=5,
            reconnect_min_s=1,
            reconnect_max_s=2,
        )
        return base.model_copy(update=overrides)

    def bus(self, role: Role | str, node: str, **kw: object) -> MqttBus:
        kw.setdefault("client_id", self.client_id(str(role)))
        return MqttBus(self.settings(role), node=node, **kw)  # type: ignore[arg-type]

    def connected(self, role: Role | str, node: str, *routes: tuple[str, Handler], **kw: object) -> MqttBus:
        """A started `bus` with these (topic filter, handler) subscriptions, once its SUBACKs are in."""
        bus = self.bus(role, node, **kw)
        for topic_filter, handler in routes:
            bus.subscribe(topic_filter, handler)
        bus.start()
        assert bus.wait_connected(10), f"{node} could not connect"
        return bus


class Collector:
    """Collects every message a role may read on `topic_filters` (a plain, non-persistent client)."""

    def __init__(self, broker: Broker, *topic_filters: str, role: Role | str = "observer") -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.seen: list[Message] = []
        self._lock = threading.Lock()
        self.bus = broker.bus(role, f"test/collector{id(self)}", persistent=False, announce=False)
        for f in topic_filters:
            self.bus.subscribe(f, self._on)
        self.bus.start()
        assert self.bus.wait_connected(10), "collector could not connect"  # SUBACKs are in

    def _on(self, msg: Message) -> None:
        with self._lock:
            self.seen.append(msg)
        self.messages.put(msg)

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout * TIME_SCALE
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if predicate(msg):
                return msg
        raise AssertionError(f"no matching message within {timeout}s; saw {[m.topic for m in self.seen]}")

    def topic(self, topic: str, timeout: float = 10.0) -> Message:
        return self.wait_for(lambda m: m.topic == topic, timeout)

    def close(self) -> None:
        self.bus.stop()


def raw_client(
    broker: Broker, role: str | None, password: str | None = None, client_id: str | None = None
) -> tuple[mqtt.Client, int]:
    """A plain paho v5 client (with the client id its user is bound to unless `client_id` is given);
    returns it with the CONNACK reason code value."""
    if client_id is None and role is not None and role in broker.files.passwords:
        client_id = broker.client_id(role)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=client_id or ""
    )
    if role is not None:
        client.username_pw_set(role, password if password is not None else broker.files.passwords[role])
    result: queue.Queue[int] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: result.put(rc.value)
    client.connect("127.0.0.1", broker.port, keepalive=10)
    client.loop_start()
    try:
        code = result.get(timeout=10)
    except queue.Empty:
        code = -1
    if code != 0:  # refused: no network loop left retrying in the background
        client.disconnect()
        client.loop_stop()
    return client, code


def publish_reason(client: mqtt.Client, topic: str, payload: bytes = b"x") -> int:
    """Publish at QoS 1 and return the PUBACK reason code value (0 ok, 135 not authorized)."""
    done: queue.Queue[int] = queue.Queue()
    client.on_publish = lambda c, u, mid, rc, p: done.put(rc.value)
    client.publish(topic, payload, qos=1, properties=Properties(PacketTypes.PUBLISH))
    return done.get(timeout=10)


def subscribe_reasons(client: mqtt.Client, filters: list[str]) -> list[int]:
    """SUBSCRIBE to all `filters` at QoS 1 in one packet; the SUBACK reason code value of each
    (1 granted, 135 not authorized)."""
    done: queue.Queue[list[int]] = queue.Queue()
    client.on_subscribe = lambda c, u, mid, codes, p: done.put([code.value for code in codes])
    client.subscribe([(f, 1) for f in filters])
    return done.get(timeout=10)
