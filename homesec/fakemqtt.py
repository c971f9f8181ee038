"""An in-memory MQTT v5 broker and a paho-compatible client for it.

`MqttBus(settings, node=..., client_factory=broker.client)` then runs its real code (worker thread,
manual acks, SUBACK before "connected", on-connect hooks) without a network, the way an HTTP mock
transport sits under the real HTTP client. The broker keeps the MQTT semantics the nodes rely on: retained
messages replayed to each new subscription, persistent sessions that queue messages while a client is
away and redeliver what was never acknowledged, last wills, `$share/<group>/` subscriptions (one member
gets each message). Not modelled: ACLs, QoS 0/2, inflight windows, keepalive, subscription options.

Each client has its own "network thread" that runs the paho callbacks in order, as paho's loop does.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from homesec.bus import Message, topic_matches

_PROPERTIES = ("UserProperty", "ResponseTopic", "CorrelationData", "ContentType")


@dataclass(frozen=True)
class _Msg:
    topic: str
    payload: bytes
    retain: bool
    properties: Properties | None

    def as_message(self) -> Message:
        p = self.properties
        return Message(
            self.topic,
            self.payload,
            dict(getattr(p, "UserProperty", []) or []),
            getattr(p, "ResponseTopic", None),
            getattr(p, "CorrelationData", None),
            self.retain,
        )

    def to_paho(self, mid: int, dup: bool) -> mqtt.MQTTMessage:
        m = mqtt.MQTTMessage(mid=mid, topic=self.topic.encode())
        m.payload = self.payload
        m.qos = 1
        m.retain = self.retain
        m.dup = dup
        m.properties = Properties(PacketTypes.PUBLISH)
        for name in _PROPERTIES:
            value = getattr(self.properties, name, None)
            if value:
                setattr(m.properties, name, value)
        return m


def _payload_bytes(payload: mqtt.PayloadType) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, int | float):
        return str(payload).encode()
    return bytes(payload)


@dataclass(eq=False)
class _Session:
    client_id: str
    client: FakeClient | None = None  # the connection, None while the client is away
    expiry_s: int = 0  # 0: the session ends with the connection
    subscriptions: dict[str, int] = field(default_factory=dict)
    inflight: dict[int, tuple[_Msg, bool]] = field(default_factory=dict)  # sent, not acknowledged
    queued: list[_Msg] = field(default_factory=list)  # arrived while the client was away
    mids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class FakeBroker:
    """The broker: sessions, subscriptions and retained messages, behind one lock. Callbacks never run
    under the lock: the broker only queues them on the clients' network threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.retained: dict[str, _Msg] = {}
        self._sessions: dict[str, _Session] = {}
        self._waiting: list[FakeClient] = []  # connecting while the broker is down
        self._turns = itertools.count()  # round robin over shared-subscription members
        self.running = True

    def client(self, client_id: str) -> FakeClient:
        """A client of this broker: pass `broker.client` as MqttBus's `client_factory`."""
        return FakeClient(self, client_id)

    # -- what tests do to the broker
    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, properties: Properties | None = None
    ) -> None:
        """A message from some other client."""
        with self._lock:
            self._route(_Msg(topic, payload, retain, properties))

    def stop(self, *, forget: bool = False) -> None:
        """The broker goes away. Sessions and retained messages survive, as with persistence, unless
        `forget`: a broker without persistence, or killed before it saved them."""
        with self._lock:
            self.running = False
            for session in list(self._sessions.values()):
                if session.client is not None:
                    self._drop(session, publish_will=False, reconnect=True)
            if forget:
                self._sessions.clear()
                self.retained.clear()

    def start(self) -> None:
        with self._lock:
            self.running = True
            waiting, self._waiting = self._waiting, []
        for client in waiting:
            client._call(client._connect)

    # -- what clients do (any thread)
    def connect(self, client: FakeClient, clean_start: bool, expiry_s: int) -> None:
        with self._lock:
            if not self.running:
                self._waiting.append(client)
                return
            session = self._sessions.get(client.fake_id)
            if session is not None and session.client is not None:
                # Taken over by the new connection. paho would reconnect after a delay and take it back,
                # forever: the fake's loser stays away instead.
                self._drop(session, publish_will=True, reconnect=False)
            present = session is not None and not clean_start
            if session is None or clean_start:
                session = self._sessions[client.fake_id] = _Session(client.fake_id)
            session.client, session.expiry_s = client, expiry_s
            client._call(lambda: client._connected(present))
            for mid, (msg, _retain) in sorted(session.inflight.items()):
                client._call(partial(client._deliver, msg.to_paho(mid, dup=True)))
            queued, session.queued = session.queued, []
            for msg in queued:
                self._deliver(session, msg)

    def disconnect(self, client: FakeClient, *, publish_will: bool) -> None:
        with self._lock:
            session = self._session_of(client)
            if session is not None:
                self._drop(session, publish_will=publish_will, reconnect=False)

    def receive(self, client: FakeClient, msg: _Msg) -> bool:
        """A PUBLISH from `client`; False when it is not connected (any more)."""
        with self._lock:
            if self._session_of(client) is None:
                return False
            self._route(msg)
            return True

    def subscribe(self, client: FakeClient, filters: list[tuple[str, int]], mid: int) -> bool:
        with self._lock:
            session = self._session_of(client)
            if session is None:
                return False
            codes = [ReasonCode(PacketTypes.SUBACK, identifier=1) for _f in filters]
            client._call(lambda: client._subscribed(mid, codes))
            for topic_filter, qos in filters:
                session.subscriptions[topic_filter] = qos
                if topic_filter.startswith("$share/"):
                    continue  # shared subscriptions get no retained messages (MQTT v5, 4.8.2)
                for msg in list(self.retained.values()):
                    if topic_matches(topic_filter, msg.topic):
                        self._deliver(session, msg, retain=True)
            return True

    def unsubscribe(self, client: FakeClient, filters: list[str]) -> bool:
        with self._lock:
            session = self._session_of(client)
            if session is None:
                return False
            for topic_filter in filters:
                session.subscriptions.pop(topic_filter, None)
            return True

    def ack(self, client: FakeClient, mid: int) -> None:
        with self._lock:
            session = self._session_of(client)
            if session is not None:
                session.inflight.pop(mid, None)

    def subscriptions(self, client_id: str) -> list[str]:
        with self._lock:
            session = self._sessions.get(client_id)
            return [] if session is None else list(session.subscriptions)

    # -- under the lock
    def _session_of(self, client: FakeClient) -> _Session | None:
        session = self._sessions.get(client.fake_id)
        return session if session is not None and session.client is client else None

    def _drop(self, session: _Session, *, publish_will: bool, reconnect: bool) -> None:
        client = session.client
        assert client is not None
        session.client = None
        if session.expiry_s == 0:
            del self._sessions[session.client_id]
        client._call(lambda: client._lost(reconnect))
        if publish_will and client.will is not None:
            self._route(client.will)

    def _route(self, msg: _Msg) -> None:
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg
            else:
                self.retained.pop(msg.topic, None)  # an empty retained message clears the topic
        groups: dict[str, list[_Session]] = {}
        for session in list(self._sessions.values()):
            for topic_filter in list(session.subscriptions):
                if not topic_matches(topic_filter, msg.topic):
                    continue
                if topic_filter.startswith("$share/"):
                    groups.setdefault(topic_filter, []).append(session)
                else:  # one copy per matching subscription, as mosquitto does for overlapping filters
                    self._deliver(session, msg)
        for members in groups.values():
            online = [s for s in members if s.client is not None] or members
            self._deliver(online[next(self._turns) % len(online)], msg)

    def _deliver(self, session: _Session, msg: _Msg, retain: bool = False) -> None:
        msg = replace(msg, retain=retain)  # forwarded messages lose the flag; replays keep it
        client = session.client
        if client is None:
            session.queued.append(msg)
            return
        mid = next(session.mids) % 65535 or next(session.mids)
        session.inflight[mid] = (msg, retain)
        client._call(lambda: client._deliver(msg.to_paho(mid, dup=False)))


class FakeClient(mqtt.Client):
    """The parts of paho's Client that MqttBus uses, talking to a FakeBroker instead of a socket."""

    def __init__(self, broker: FakeBroker, client_id: str) -> None:
        super().__init__(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self.broker = broker
        self.fake_id = client_id
        self.will: _Msg | None = None
        self.sent: list[Message] = []  # every PUBLISH the broker received from this client, in order
        # The callbacks to run on the network thread (tests wait on it with all_tasks_done).
        self.events: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.network_thread: threading.Thread | None = None
        self._online = False
        self._wanted = False  # connect_async called and no disconnect since
        self._fresh = True
        self._expiry_s = 0
        self._mids = itertools.count(1)
        self._outbox: list[tuple[_Msg, mqtt.MQTTMessageInfo]] = []  # published while disconnected
        self._out_lock = threading.Lock()

    # -- paho's interface
    def will_set(
        self,
        topic: str,
        payload: mqtt.PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        self.will = _Msg(topic, _payload_bytes(payload), retain, properties)

    def connect_async(
        self,
        host: str,
        port: int = 1883,
        keepalive: int = 60,
        bind_address: str = "",
        bind_port: int = 0,
        clean_start: bool | int = mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        properties: Properties | None = None,
    ) -> None:
        self._wanted = True
        self._fresh = clean_start is True
        self._expiry_s = int(getattr(properties, "SessionExpiryInterval", 0) or 0)

    def loop_start(self) -> MQTTErrorCode:
        self.network_thread = threading.Thread(target=self._run, name=f"fakemqtt-{self.fake_id}", daemon=True)
        self.network_thread.start()
        self._call(self._connect)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_stop(self) -> MQTTErrorCode:
        self.events.put(None)
        if self.network_thread is not None and self.network_thread is not threading.current_thread():
            self.network_thread.join(10)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def disconnect(
        self, reasoncode: ReasonCode | None = None, properties: Properties | None = None
    ) -> MQTTErrorCode:
        self._wanted = False
        if not self._online:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        self.broker.disconnect(self, publish_will=False)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def is_connected(self) -> bool:
        return self._online

    def publish(
        self,
        topic: str,
        payload: mqtt.PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> mqtt.MQTTMessageInfo:
        msg = _Msg(topic, _payload_bytes(payload), retain, properties)
        info = mqtt.MQTTMessageInfo(next(self._mids) % 65535 or next(self._mids))
        with self._out_lock:
            if self._online and self._send(msg, info):
                return info
            info.rc = MQTTErrorCode.MQTT_ERR_NO_CONN  # queued, sent after the next connect (as paho does)
            self._outbox.append((msg, info))
        return info

    def subscribe(  # type: ignore[override]
        self,
        topic: str | list[tuple[str, int]],
        qos: int = 0,
        options: object = None,
        properties: Properties | None = None,
    ) -> tuple[MQTTErrorCode, int | None]:
        filters = [(topic, qos)] if isinstance(topic, str) else list(topic)
        mid = next(self._mids) % 65535 or next(self._mids)
        if self._online and self.broker.subscribe(self, filters, mid):
            return MQTTErrorCode.MQTT_ERR_SUCCESS, mid
        return MQTTErrorCode.MQTT_ERR_NO_CONN, None

    def unsubscribe(
        self, topic: str | list[str], properties: Properties | None = None
    ) -> tuple[MQTTErrorCode, int | None]:
        filters = [topic] if isinstance(topic, str) else list(topic)
        mid = next(self._mids) % 65535 or next(self._mids)
        if self._online and self.broker.unsubscribe(self, filters):
            return MQTTErrorCode.MQTT_ERR_SUCCESS, mid
        return MQTTErrorCode.MQTT_ERR_NO_CONN, None

    def ack(self, mid: int, qos: int) -> MQTTErrorCode:
        if not self._online:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        self.broker.ack(self, mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- for tests
    def crash(self) -> None:
        """The process dies: no DISCONNECT (the broker publishes the will), no more callbacks."""
        self._wanted = False
        self.events.put(None)
        self.broker.disconnect(self, publish_will=True)
        self._online = False

    # -- network thread
    def _call(self, event: Callable[[], None]) -> None:
        self.events.put(event)

    def _run(self) -> None:
        while (event := self.events.get()) is not None:
            try:
                event()
            finally:
                self.events.task_done()
        self.events.task_done()
        while True:  # whatever arrives after loop_stop is never handled: do not leave waiters hanging
            try:
                self.events.get_nowait()
            except queue.Empty:
                return
            self.events.task_done()

    def _connect(self) -> None:
        if self._wanted and not self._online:
            self.broker.connect(self, self._fresh, self._expiry_s)

    def _connected(self, session_present: bool) -> None:
        self._online = True
        rc = ReasonCode(PacketTypes.CONNACK, "Success")
        self._callback("on_connect", mqtt.ConnectFlags(session_present), rc, Properties(PacketTypes.CONNACK))
        with self._out_lock:
            outbox, self._outbox = self._outbox, []
            for msg, info in outbox:
                info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
                if not self._send(msg, info):
                    self._outbox.append((msg, info))

    def _send(self, msg: _Msg, info: mqtt.MQTTMessageInfo) -> bool:
        if not self.broker.receive(self, msg):
            return False
        self.sent.append(msg.as_message())
        self._call(lambda: self._published(info))
        return True

    def _published(self, info: mqtt.MQTTMessageInfo) -> None:
        info._set_as_published()
        rc = ReasonCode(PacketTypes.PUBACK, "Success")
        self._callback("on_publish", info.mid, rc, Properties(PacketTypes.PUBACK))

    def _subscribed(self, mid: int, codes: list[ReasonCode]) -> None:
        self._callback("on_subscribe", mid, codes, Properties(PacketTypes.SUBACK))

    def _callback(self, name: str, *args: object) -> None:
        """Call a paho callback (API version 2) as paho's loop does: client and userdata first."""
        callback: Callable[..., object] | None = getattr(self, name)
        if callback is not None:
            callback(self, None, *args)

    def _deliver(self, message: mqtt.MQTTMessage) -> None:
        if self._online:
            self._callback("on_message", message)

    def _lost(self, reconnect: bool) -> None:
        self._online = False
        rc = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error" if reconnect else "Normal disconnection")
        self._callback("on_disconnect", mqtt.DisconnectFlags(False), rc, Properties(PacketTypes.DISCONNECT))
        if reconnect:
            self._connect()
