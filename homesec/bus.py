"""The message bus every node talks through: a small interface, a paho-mqtt implementation, a local fake.

Delivery guarantees (MQTT v5, QoS 1):
- persistent session (clean_start=False + SessionExpiryInterval), so messages published while a node is
  down are queued by the broker and delivered when it returns;
- manual acknowledgement: a message is PUBACKed only after its handler returned, so a crash mid-work
  means redelivery;
- handlers run one at a time, in arrival order, on one worker thread; a handler that raises is logged,
  reported on the node's error topic, and does not stop the next message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from homesec.contract import (
    JSON_CONTENT_TYPE,
    Availability,
    ContractError,
    ErrorReport,
    Payload,
    Topics,
)
from homesec.settings import MqttSettings

log = logging.getLogger(__name__)

PayloadLike = bytes | str | Payload


class PayloadTooLarge(ContractError):
    """A publish over `mqtt.max_payload_mb`: the broker would drop the connection, and paho would resend it
    after every reconnect, so it is refused here and never queued."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    user_properties: dict[str, str] = field(default_factory=dict)
    response_topic: str | None = None
    correlation_data: bytes | None = None
    retain: bool = False


Handler = Callable[[Message], None]


class Bus(Protocol):
    node: str
    topics: Topics

    def subscribe(self, topic_filter: str, handler: Handler) -> None: ...

    def on_connected(self, callback: Callable[[], None]) -> None: ...

    def publish(
        self,
        topic: str,
        payload: PayloadLike,
        *,
        retain: bool = False,
        user_properties: dict[str, str] | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        content_type: str | None = None,
    ) -> None: ...

    def publish_confirmed(
        self,
        topic: str,
        payload: PayloadLike,
        *,
        timeout: float = 10.0,
        retain: bool = False,
        user_properties: dict[str, str] | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        content_type: str | None = None,
    ) -> bool: ...

    def report_error(self, error: str, detail: str, topic: str) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def connected(self) -> bool: ...

    def wait_connected(self, timeout: float) -> bool: ...


def encode(payload: PayloadLike) -> tuple[bytes, str | None]:
    """Payload bytes and their content type (JSON for contract models)."""
    if isinstance(payload, Payload):
        return payload.to_json(), JSON_CONTENT_TYPE
    if isinstance(payload, str):
        return payload.encode(), None
    return payload, None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching, including `$share/<group>/` prefixes."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    return mqtt.topic_matches_sub(topic_filter, topic)


class Dispatcher:
    """Routes a message to the handlers whose filter matches, and turns failures into error reports."""

    def __init__(self, report: Callable[[str, str, str], None]) -> None:
        self.routes: list[tuple[str, Handler]] = []
        self._report = report

    def add(self, topic_filter: str, handler: Handler) -> None:
        self.routes.append((topic_filter, handler))

    def dispatch(self, msg: Message) -> None:
        for topic_filter, handler in self.routes:
            if not topic_matches(topic_filter, msg.topic):
                continue
            try:
                handler(msg)
            except ContractError as exc:
                self._report("bad_payload", str(exc), msg.topic)
            except Exception as exc:
                log.exception("handler for %s failed", msg.topic)
                self._report("handler_failed", f"{type(exc).__name__}: {exc}", msg.topic)


def error_report(node: str, error: str, detail: str, topic: str) -> ErrorReport:
    return ErrorReport(error=error, detail=detail[:2000], topic=topic, node=node)


def publish_answer(bus: Bus, request: Message, topic: str, answer: Payload) -> None:
    """`answer` on `topic` for everyone, and on the requester's MQTT v5 response topic if it gave one.

    Only response topics under `<prefix>/reply/` are honoured: the requester chooses the topic, and the
    answering node may also write its own state topics, which a request must not be able to overwrite.
    """
    bus.publish(topic, answer)
    reply = request.response_topic
    if not reply:
        return
    if not reply.startswith(bus.topics.reply_root) or any(c in reply for c in "+#"):
        bus.report_error(
            "bad_response_topic",
            f"response topic {reply!r} is not under {bus.topics.reply_root}",
            request.topic,
        )
        return
    bus.publish(reply, answer, correlation_data=request.correlation_data)


class MqttBus:
    """paho-mqtt 2.x client (callback API v2, MQTT v5) with the guarantees described above."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        node: str,
        client_id: str | None = None,
        persistent: bool = True,
        announce: bool = True,
    ) -> None:
        self.node = node
        self._announce = announce  # availability + last will; off for short-lived CLI clients
        self.topics = Topics(settings.prefix)
        self.settings = settings
        self._persistent = persistent
        self._dispatcher = Dispatcher(self.report_error)
        self._inbox: queue.Queue[tuple[int, int, Message] | None] = queue.Queue()
        self._connected = threading.Event()
        self._generation = 0  # bumps on every connect; acks for older connections are not sent
        # PUBACK reason codes by message id. Filled on the network thread for every publish (the ack can
        # beat publish() returning), trimmed to the newest few hundred: ids wrap only after 65535.
        self._pub_results: OrderedDict[int, ReasonCode] = OrderedDict()
        self._pub_cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._connect_hooks: list[Callable[[], None]] = []
        self._stopping = False
        self._ready_mid = -1
        self._client = self._make_client(client_id or f"homesec-{node.replace('/', '-')}")

    # -- setup
    def _make_client(self, client_id: str) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if s.username:
            password = s.password.get_secret_value() if s.password else None
            client.username_pw_set(s.username, password)
        if s.tls.enabled:
            client.tls_set(
                ca_certs=str(s.tls.ca_file) if s.tls.ca_file else None,
                certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                keyfile=str(s.tls.key_file) if s.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(s.tls.insecure)
        if self._announce:
            client.will_set(self.topics.available(self.node), Availability.OFFLINE.value, qos=1, retain=True)
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        self._dispatcher.add(topic_filter, handler)
        if self._connected.is_set():
            self._client.subscribe(topic_filter, qos=1)

    def on_connected(self, callback: Callable[[], None]) -> None:
        """Run `callback` after every (re)connect, e.g. to re-publish retained state. Keep it short."""
        self._connect_hooks.append(callback)

    # -- lifecycle
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s if self._persistent else 0
        self._worker = threading.Thread(target=self._work, name=f"bus-{self.node}", daemon=True)
        self._worker.start()
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=not self._persistent,
            properties=props,
        )
        self._client.loop_start()

    def stop(self) -> None:
        if self._connected.is_set() and self._announce:
            info = self._client.publish(
                self.topics.available(self.node), Availability.STOPPED.value, qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=3)
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- paho callbacks (network thread: keep them short)
    def _on_connect(self, client: mqtt.Client, _u: object, flags: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            log.error(
                "broker %s:%s refused %s: %s", self.settings.host, self.settings.port, self.node, rc.getName()
            )
            return
        self._generation += 1
        log.info("connected to %s:%s as %s", self.settings.host, self.settings.port, self.node)
        filters = list(dict.fromkeys(f for f, _h in self._dispatcher.routes))
        if filters:
            # "connected" means ready: announced and subscribed only once the SUBACK is in.
            _rc, mid = client.subscribe([(f, 1) for f in filters])
            self._ready_mid = -1 if mid is None else mid
        else:
            self._become_ready(client)

    def _on_subscribe(
        self, client: mqtt.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        refused = [c.getName() for c in codes if c.is_failure]
        if refused:
            log.error("broker refused subscriptions of %s: %s", self.node, refused)
        if mid == self._ready_mid:
            self._become_ready(client)

    def _become_ready(self, client: mqtt.Client) -> None:
        if self._announce:
            client.publish(self.topics.available(self.node), Availability.ONLINE.value, qos=1, retain=True)
        self._connected.set()
        for hook in self._connect_hooks:
            try:
                hook()
            except Exception:
                log.exception("on-connect hook failed")

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stopping:
            log.warning("disconnected from broker (%s); reconnecting", rc.getName())

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        props = m.properties
        user = dict(getattr(props, "UserProperty", []) or [])
        msg = Message(
            topic=m.topic,
            payload=bytes(m.payload),
            user_properties=user,
            response_topic=getattr(props, "ResponseTopic", None),
            correlation_data=getattr(props, "CorrelationData", None),
            retain=bool(m.retain),
        )
        self._inbox.put((self._generation, m.mid if m.qos > 0 else -1, msg))

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        with self._pub_cond:
            self._pub_results[mid] = rc
            while len(self._pub_results) > 500:
                self._pub_results.popitem(last=False)
            self._pub_cond.notify_all()
        if rc.is_failure:
            log.error("broker refused a publish from %s: %s", self.node, rc.getName())

    # -- worker
    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            generation, mid, msg = item
            self._dispatcher.dispatch(msg)
            # An ack on a newer connection would hit a different packet id: the broker redelivers instead.
            if mid >= 0 and generation == self._generation and self._client.is_connected():
                self._client.ack(mid, 1)

    # -- publishing
    def _check_size(self, topic: str, data: bytes) -> None:
        limit = int(self.settings.max_payload_mb * 1024 * 1024)
        if len(data) > limit:
            raise PayloadTooLarge(f"{len(data)} bytes for {topic} exceed mqtt.max_payload_mb ({limit} bytes)")

    def _properties(
        self,
        user_properties: dict[str, str] | None,
        response_topic: str | None,
        correlation_data: bytes | None,
        content_type: str | None,
    ) -> Properties | None:
        props = Properties(PacketTypes.PUBLISH)
        used = False
        if user_properties:
            props.UserProperty = list(user_properties.items())
            used = True
        if response_topic:
            props.ResponseTopic = response_topic
            used = True
        if correlation_data is not None:
            props.CorrelationData = correlation_data
            used = True
        if content_type:
            props.ContentType = content_type
            used = True
        return props if used else None

    def publish(
        self,
        topic: str,
        payload: PayloadLike,
        *,
        retain: bool = False,
        user_properties: dict[str, str] | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        data, default_type = encode(payload)
        self._check_size(topic, data)
        props = self._properties(
            user_properties, response_topic, correlation_data, content_type or default_type
        )
        self._client.publish(topic, data, qos=1, retain=retain, properties=props)

    def publish_confirmed(
        self,
        topic: str,
        payload: PayloadLike,
        *,
        timeout: float = 10.0,
        retain: bool = False,
        user_properties: dict[str, str] | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        content_type: str | None = None,
    ) -> bool:
        """Publish and wait for the broker's PUBACK. False if the broker is away or refused it."""
        if not self._connected.is_set():
            return False  # paho would queue it in memory; the caller's disk spool is the safer place
        data, default_type = encode(payload)
        self._check_size(topic, data)
        props = self._properties(
            user_properties, response_topic, correlation_data, content_type or default_type
        )
        # Never hold _pub_cond around publish(): paho's network thread holds its own lock while it
        # calls _on_publish, which takes _pub_cond (lock-order deadlock).
        info = self._client.publish(topic, data, qos=1, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        with self._pub_cond:
            ok = self._pub_cond.wait_for(lambda: info.mid in self._pub_results, timeout)
            rc = self._pub_results.pop(info.mid, None)
        return bool(ok and rc is not None and not rc.is_failure)

    def report_error(self, error: str, detail: str, topic: str) -> None:
        log.warning("%s on %s: %s", error, topic, detail)
        report = error_report(self.node, error, detail, topic)
        self._client.publish(self.topics.error(self.node), report.to_json(), qos=1)


class LocalBus:
    """In-memory bus with the same interface, for unit tests: publishes are recorded and delivered
    synchronously to matching subscribers."""

    def __init__(
        self, node: str = "test/local", topics: Topics | None = None, max_payload_bytes: int | None = None
    ) -> None:
        self.node = node
        self.max_payload_bytes = max_payload_bytes
        self.topics = topics or Topics()
        self.published: list[Message] = []
        self.errors: list[ErrorReport] = []
        self.retained: dict[str, Message] = {}
        self.online = True
        self._connect_hooks: list[Callable[[], None]] = []
        self._dispatcher = Dispatcher(self.report_error)
        self._lock = threading.RLock()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        self._dispatcher.add(topic_filter, handler)

    def on_connected(self, callback: Callable[[], None]) -> None:
        self._connect_hooks.append(callback)

    def start(self) -> None:
        self.publish(self.topics.available(self.node), Availability.ONLINE.value, retain=True)
        for hook in self._connect_hooks:
            hook()

    def stop(self) -> None:
        self.publish(self.topics.available(self.node), Availability.STOPPED.value, retain=True)

    @property
    def connected(self) -> bool:
        return self.online

    def wait_connected(self, timeout: float) -> bool:
        return self.online

    def publish(
        self,
        topic: str,
        payload: PayloadLike,
        *,
        retain: bool = False,
        user_properties: dict[str, str] | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        data, _ = encode(payload)
        if self.max_payload_bytes is not None and len(data) > self.max_payload_bytes:
            raise PayloadTooLarge(f"{len(data)} bytes for {topic} exceed {self.max_payload_bytes} bytes")
        msg = Message(topic, data, dict(user_properties or {}), response_topic, correlation_data, retain)
        with self._lock:
            self.published.append(msg)
            if retain:
                self.retained[topic] = msg
        self._dispatcher.dispatch(msg)

    def publish_confirmed(
        self, topic: str, payload: PayloadLike, *, timeout: float = 10.0, **kw: object
    ) -> bool:
        if not self.online:
            return False
        self.publish(topic, payload, **kw)  # type: ignore[arg-type]
        return True

    def inject(self, topic: str, payload: PayloadLike, **kw: object) -> None:
        """Deliver a message to this bus's subscribers as if it came from the broker."""
        data, _ = encode(payload)
        self._dispatcher.dispatch(Message(topic, data, **kw))  # type: ignore[arg-type]

    def report_error(self, error: str, detail: str, topic: str) -> None:
        log.warning("%s on %s: %s", error, topic, detail)
        report = error_report(self.node, error, detail, topic)
        self.errors.append(report)
        with self._lock:
            self.published.append(Message(self.topics.error(self.node), report.to_json()))

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.published if m.topic == topic]

    def json(self, topic: str) -> list[dict[str, object]]:
        return [json.loads(p) for p in self.payloads(topic)]
