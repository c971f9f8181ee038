"""The message bus every node talks through: a small interface and its paho-mqtt implementation.

Delivery guarantees (MQTT v5, QoS 1):
- persistent session (clean_start=False + SessionExpiryInterval), so messages published while a node is
  down are queued by the broker and delivered when it returns;
- manual acknowledgement: a message is PUBACKed only after its handler returned, so a crash mid-work
  means redelivery;
- handlers run one at a time, in arrival order, on one worker thread; a handler that raises is logged,
  reported on the node's error topic, and does not stop the next message;
- a handler that cannot do its work now raises `RetryLater` (a full disk counts the same): the message
  stays unacknowledged, is reported (`retry_later`) and handed to that handler again after a backoff
  (1 s doubling to 60 s) on a timer, while the messages behind it go on; it is acknowledged once handled.
  (An unacknowledged message holds one of the broker's in-flight slots for this client meanwhile.)
- messages that arrived on a connection that has since been lost are dropped, not handled: the broker
  redelivers them on the new connection (to a persistent session; a clean one never gets them again, so
  its messages are still handled).

Tests swap the network for an in-memory broker (`homesec.fakemqtt`) through `client_factory`, so they run
this same code.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypedDict, Unpack

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
from homesec.settings import MqttSettings, mb_to_bytes

log = logging.getLogger(__name__)

PayloadLike = bytes | str | Payload


class PayloadTooLarge(ContractError):
    """A publish over `mqtt.max_payload_mb`: the broker would drop the connection, and paho would resend it
    after every reconnect, so it is refused here and never queued."""


class RetryLater(Exception):
    """Raised by a handler that cannot do its work now (a full disk, a peer away): the message stays
    unacknowledged, is reported on the node's error topic and handed to the handler again later."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    user_properties: dict[str, str] = field(default_factory=dict)
    response_topic: str | None = None
    correlation_data: bytes | None = None
    retain: bool = False


Handler = Callable[[Message], None]
Unsubscribe = Callable[[], None]

# Causes that go away by themselves or by an operator's hand, with nothing wrong in the message.
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_transient(exc: BaseException) -> bool:
    """Whether a handler's failure asks for another attempt later rather than an error and an ack."""
    return isinstance(exc, RetryLater) or (isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS)


class PublishOptions(TypedDict, total=False):
    """What a publish may set besides topic and payload (the QoS is always 1)."""

    retain: bool
    user_properties: dict[str, str] | None
    response_topic: str | None
    correlation_data: bytes | None
    content_type: str | None


class Bus(Protocol):
    node: str
    topics: Topics

    def subscribe(self, topic_filter: str, handler: Handler) -> Unsubscribe: ...

    def on_connected(self, callback: Callable[[], None]) -> None: ...

    def publish(self, topic: str, payload: PayloadLike, **options: Unpack[PublishOptions]) -> None: ...

    def publish_confirmed(
        self, topic: str, payload: PayloadLike, *, timeout: float = 10.0, **options: Unpack[PublishOptions]
    ) -> bool: ...

    def report_error(self, error: str, detail: str, topic: str) -> None: ...

    def on_error(self, callback: Callable[[ErrorReport], None]) -> None: ...

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


@dataclass(frozen=True, eq=False)
class _Route:
    topic_filter: str
    handler: Handler


class Dispatcher:
    """Routes a message to the handlers whose filter matches, and turns failures into error reports."""

    def __init__(self, report: Callable[[str, str, str], None]) -> None:
        # Replaced, never mutated: the worker iterates over a snapshot while others (un)subscribe.
        self._routes: tuple[_Route, ...] = ()
        self._lock = threading.Lock()
        self._report = report

    def add(self, topic_filter: str, handler: Handler) -> Callable[[], bool]:
        """Add a route; returns its remover, which says whether that was the filter's last route."""
        route = _Route(topic_filter, handler)
        with self._lock:
            self._routes = (*self._routes, route)

        def remove() -> bool:
            with self._lock:
                was_there = route in self._routes
                self._routes = tuple(r for r in self._routes if r is not route)
                return was_there and topic_filter not in self.filters()

        return remove

    def filters(self) -> list[str]:
        return list(dict.fromkeys(r.topic_filter for r in self._routes))

    def dispatch(
        self, msg: Message, routes: tuple[_Route, ...] | None = None
    ) -> list[tuple[_Route, Exception]]:
        """Run the matching routes (or, on a retry, those of `routes` still subscribed); returns the
        routes that asked to be tried again later, with what they raised."""
        current = self._routes
        deferred: list[tuple[_Route, Exception]] = []
        for route in current if routes is None else routes:
            if not topic_matches(route.topic_filter, msg.topic) or route not in current:
                continue
            try:
                route.handler(msg)
            except ContractError as exc:
                self._report("bad_payload", str(exc), msg.topic)
            except Exception as exc:
                if is_transient(exc):
                    deferred.append((route, exc))
                    continue
                log.exception("handler for %s failed", msg.topic)
                self._report("handler_failed", f"{type(exc).__name__}: {exc}", msg.topic)
        return deferred


@dataclass(frozen=True)
class _Delivery:
    """A message as the worker handles it: from which connection, under which packet id (-1: QoS 0),
    and, on a retry, the routes still to run and how many attempts came before."""

    connection: int
    mid: int
    msg: Message
    routes: tuple[_Route, ...] | None = None
    attempt: int = 0


class _Retries:
    """Deliveries waiting for their next attempt, each on a timer of its own, so no other message waits."""

    def __init__(self, delays: tuple[float, float], put: Callable[[_Delivery], None]) -> None:
        self.delays = delays  # (first, longest): doubling from the first
        self._put = put
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

    def delay(self, attempt: int) -> float:
        first, longest = self.delays
        return float(min(first * 2 ** min(attempt, 30), longest))

    def schedule(self, delivery: _Delivery, delay: float) -> None:
        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            self._put(delivery)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def pending(self) -> int:
        with self._lock:
            return len(self._timers)

    def cancel(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()


def error_report(node: str, error: str, detail: str, topic: str) -> ErrorReport:
    return ErrorReport(error=error, detail=detail[:2000], topic=topic, node=node)


def publish_properties(
    user_properties: dict[str, str] | None = None,
    response_topic: str | None = None,
    correlation_data: bytes | None = None,
    content_type: str | None = None,
) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    if user_properties:
        props.UserProperty = list(user_properties.items())
    if response_topic:
        props.ResponseTopic = response_topic
    if correlation_data is not None:
        props.CorrelationData = correlation_data
    if content_type:
        props.ContentType = content_type
    return props


ClientFactory = Callable[[str], mqtt.Client]


def paho_client(client_id: str) -> mqtt.Client:
    """The real network client (callback API v2, MQTT v5, acknowledged by hand)."""
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )


class Subscription:
    """What `MqttBus.subscribe` returns: call it to unsubscribe; `wait_ready` waits for the SUBACK."""

    def __init__(self, remove: Callable[[], None], ready: Callable[[float], bool]) -> None:
        self._remove = remove
        self._ready = ready

    def __call__(self) -> None:
        self._remove()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready(timeout)


class _Acks:
    """Broker acknowledgements (PUBACK reason codes, SUBACKs) by message id, filled on the network
    thread (an ack can beat the call that sent the packet returning), trimmed to the newest few hundred:
    ids wrap only after 65535."""

    def __init__(self) -> None:
        self._results: OrderedDict[int, ReasonCode | None] = OrderedDict()
        self._cond = threading.Condition()

    def put(self, mid: int, rc: ReasonCode | None = None) -> None:
        with self._cond:
            self._results[mid] = rc
            while len(self._results) > 500:
                self._results.popitem(last=False)
            self._cond.notify_all()

    def wait(self, mid: int, timeout: float) -> tuple[bool, ReasonCode | None]:
        with self._cond:
            ok = self._cond.wait_for(lambda: mid in self._results, timeout)
            return ok, self._results.pop(mid, None)


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
        client_factory: ClientFactory = paho_client,
        retry_s: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self.node = node
        self._announce = announce  # availability + last will; off for short-lived CLI clients
        group = settings.share_group.get_secret_value() if settings.share_group else "recognizer"
        self.topics = Topics(settings.prefix, share_group=group)
        self.settings = settings
        self._persistent = persistent
        self._dispatcher = Dispatcher(self.report_error)
        self._inbox: queue.Queue[_Delivery | None] = queue.Queue()
        self._retries = _Retries(retry_s, self._inbox.put)
        self._connected = threading.Event()
        self._connection = 0  # bumps on every disconnect: what arrived before is stale
        self._fresh_from = 0  # the connection whose session the broker started afresh (forgot the rest)
        self._closing = threading.Event()
        self._pubacks = _Acks()
        self._subacks = _Acks()
        self._worker: threading.Thread | None = None
        self._connect_hooks: list[Callable[[], None]] = []
        self._error_hooks: list[Callable[[ErrorReport], None]] = []
        self._stopping = False
        self._ready_mid = -1
        self._client = self._configure(client_factory(client_id or f"homesec-{node.replace('/', '-')}"))

    # -- setup
    def _configure(self, client: mqtt.Client) -> mqtt.Client:
        s = self.settings
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

    def subscribe(self, topic_filter: str, handler: Handler) -> Subscription:
        """Route matching messages to `handler`. Before `start` the filter joins the first SUBSCRIBE;
        later it is subscribed at once (and the broker replays the retained messages)."""
        remove = self._dispatcher.add(topic_filter, handler)
        mid: int | None = None
        if self._connected.is_set():
            _rc, mid = self._client.subscribe(topic_filter, qos=1)

        def unsubscribe() -> None:
            if remove() and self._connected.is_set():
                self._client.unsubscribe(topic_filter)

        confirmed = False

        def ready(timeout: float) -> bool:
            nonlocal confirmed
            if mid is None:
                return self._connected.wait(timeout)  # in the SUBSCRIBE sent on connect
            confirmed = confirmed or self._subacks.wait(mid, timeout)[0]  # the wait takes the SUBACK
            return confirmed

        return Subscription(unsubscribe, ready)

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
        self._closing.set()
        if self._connected.is_set() and self._announce:
            info = self._client.publish(
                self.topics.available(self.node), Availability.STOPPED.value, qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=3)
        self._retries.cancel()  # unacknowledged: the broker redelivers them to the next run
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
    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: ReasonCode, _p: object
    ) -> None:
        if rc.is_failure:
            log.error(
                "broker %s:%s refused %s: %s", self.settings.host, self.settings.port, self.node, rc.getName()
            )
            return
        if not flags.session_present:
            self._fresh_from = self._connection  # nothing of the earlier connections comes again
        log.info("connected to %s:%s as %s", self.settings.host, self.settings.port, self.node)
        filters = self._dispatcher.filters()
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
        self._subacks.put(mid)
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
        self._connection += 1
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
        self._inbox.put(_Delivery(self._connection, m.mid if m.qos > 0 else -1, msg))

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        self._pubacks.put(mid, rc)
        if rc.is_failure:
            log.error("broker refused a publish from %s: %s", self.node, rc.getName())

    # -- worker
    def _work(self) -> None:
        while (delivery := self._inbox.get()) is not None:
            try:
                self._handle(delivery)
            finally:
                self._inbox.task_done()  # after the ack: a drained inbox means nothing is left to do
        self._inbox.task_done()

    def _handle(self, d: _Delivery) -> None:
        if self._stale(d):
            log.debug("dropped a message of a lost connection on %s: the broker redelivers it", d.msg.topic)
            return
        deferred = self._dispatcher.dispatch(d.msg, d.routes)
        if deferred:
            self._defer(d, deferred)
        elif d.mid >= 0 and d.connection == self._connection and self._client.is_connected():
            self._client.ack(d.mid, 1)

    def _stale(self, d: _Delivery) -> bool:
        """From a lost connection, to a session that gets it again (its packet id is void anyway).

        Whether the broker kept the session (and so redelivers) is known only once it is back: until
        then the worker waits, which holds nothing up (every message still queued came before the loss).
        """
        if not self._persistent or d.mid < 0 or d.connection == self._connection:
            return False
        while not self._connected.wait(0.5):
            if self._closing.is_set():
                return True  # unacknowledged: the broker keeps it for the next run
        return d.connection >= self._fresh_from

    def _defer(self, d: _Delivery, deferred: list[tuple[_Route, Exception]]) -> None:
        delay = self._retries.delay(d.attempt)
        for _route, exc in deferred:
            detail = f"{type(exc).__name__}: {exc}; attempt {d.attempt + 1}, next in {delay:g} s"
            self.report_error("retry_later", detail, d.msg.topic)
        routes = tuple(route for route, _exc in deferred)
        self._retries.schedule(replace(d, routes=routes, attempt=d.attempt + 1), delay)

    # -- publishing
    def _send(self, topic: str, payload: PayloadLike, options: PublishOptions) -> mqtt.MQTTMessageInfo:
        data, default_type = encode(payload)
        limit = mb_to_bytes(self.settings.max_payload_mb)
        if len(data) > limit:
            raise PayloadTooLarge(f"{len(data)} bytes for {topic} exceed mqtt.max_payload_mb ({limit} bytes)")
        props = publish_properties(
            options.get("user_properties"),
            options.get("response_topic"),
            options.get("correlation_data"),
            options.get("content_type") or default_type,
        )
        return self._client.publish(topic, data, qos=1, retain=options.get("retain", False), properties=props)

    def publish(self, topic: str, payload: PayloadLike, **options: Unpack[PublishOptions]) -> None:
        self._send(topic, payload, options)

    def publish_confirmed(
        self, topic: str, payload: PayloadLike, *, timeout: float = 10.0, **options: Unpack[PublishOptions]
    ) -> bool:
        """Publish and wait for the broker's PUBACK. False if the broker is away or refused it."""
        if not self._connected.is_set():
            return False  # paho would queue it in memory; the caller's disk spool is the safer place
        # Never hold a lock of ours around publish(): paho's network thread holds its own lock while it
        # calls _on_publish, which takes ours (lock-order deadlock).
        info = self._send(topic, payload, options)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        ok, rc = self._pubacks.wait(info.mid, timeout)
        return bool(ok and rc is not None and not rc.is_failure)

    def report_error(self, error: str, detail: str, topic: str) -> None:
        log.warning("%s on %s: %s", error, topic, detail)
        report = error_report(self.node, error, detail, topic)
        self._client.publish(self.topics.error(self.node), report.to_json(), qos=1)
        for hook in self._error_hooks:
            hook(report)

    def on_error(self, callback: Callable[[ErrorReport], None]) -> None:
        """Run `callback` with every error this node reports (e.g. to count them by kind)."""
        self._error_hooks.append(callback)
