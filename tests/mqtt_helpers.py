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

from homesec.broker import BrokerFiles, MosquittoProcess, free_port, prepare_local_broker
from homesec.bus import Message, MqttBus
from homesec.contract import Role
from homesec.settings import MqttSettings


class Broker:
    """A real mosquitto on a free port, with the project's generated config, ACL and passwords."""

    def __init__(self, directory: Path, prefix: str = "homesec") -> None:
        self.directory = directory
        self.port = free_port()
        self.files: BrokerFiles = prepare_local_broker(directory, self.port, prefix=prefix)
        self.process = MosquittoProcess(self.files.conf, self.port, directory / "mosquitto.log")

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def log(self) -> str:
        return (self.directory / "mosquitto.log").read_text(errors="replace")

    def settings(self, role: Role | str, **overrides: object) -> MqttSettings:
        base = MqttSettings(
            host="127.0.0.1",
            port=self.port,
            username=str(role),
            password=SecretStr(self.files.passwords[str(role)]),
            keepalive_s=5,
            reconnect_min_s=1,
            reconnect_max_s=2,
        )
        return base.model_copy(update=overrides)

    def bus(self, role: Role | str, node: str, **kw: object) -> MqttBus:
        return MqttBus(self.settings(role), node=node, **kw)  # type: ignore[arg-type]


class Collector:
    """Collects every message a role may read on `topic_filters` (a plain, non-persistent client)."""

    def __init__(self, broker: Broker, *topic_filters: str, role: Role | str = Role.VIEWER) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.seen: list[Message] = []
        self._lock = threading.Lock()
        self.bus = MqttBus(
            broker.settings(role), node=f"test/collector{id(self)}", persistent=False, announce=False
        )
        for f in topic_filters:
            self.bus.subscribe(f, self._on)
        self.bus.start()
        assert self.bus.wait_connected(10), "collector could not connect"  # SUBACKs are in

    def _on(self, msg: Message) -> None:
        with self._lock:
            self.seen.append(msg)
        self.messages.put(msg)

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
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


def raw_client(broker: Broker, role: str | None, password: str | None = None) -> tuple[mqtt.Client, int]:
    """A plain paho v5 client; returns it with the CONNACK reason code value."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
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
    return client, code


def publish_reason(client: mqtt.Client, topic: str, payload: bytes = b"x") -> int:
    """Publish at QoS 1 and return the PUBACK reason code value (0 ok, 135 not authorized)."""
    done: queue.Queue[int] = queue.Queue()
    client.on_publish = lambda c, u, mid, rc, p: done.put(rc.value)
    client.publish(topic, payload, qos=1, properties=Properties(PacketTypes.PUBLISH))
    return done.get(timeout=10)
