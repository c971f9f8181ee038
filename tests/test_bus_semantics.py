"""The same MQTT behaviour checks against the in-memory broker and a real mosquitto.

The services' unit tests run on the fake (`tests.helpers.LocalBus`); these checks keep it honest: what
holds on one transport must hold on the other.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from homesec.bus import Message, MqttBus
from homesec.contract import ErrorReport, Role, Topics, new_id, parse
from homesec.fakemqtt import FakeBroker, FakeClient
from homesec.settings import MqttSettings
from tests.helpers import LocalBus
from tests.mqtt_helpers import Broker

T = Topics()
WAIT_S = 10.0


class Transport(Protocol):
    def bus(self, role: Role, node: str, **kw: Any) -> MqttBus: ...

    def crash(self, bus: MqttBus) -> None: ...


class Fake:
    def __init__(self) -> None:
        self.broker = FakeBroker()

    def bus(self, role: Role, node: str, **kw: Any) -> MqttBus:
        return MqttBus(MqttSettings(), node=node, client_factory=self.broker.client, **kw)

    def crash(self, bus: MqttBus) -> None:
        assert isinstance(bus._client, FakeClient)
        bus._client.crash()


class Real:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def bus(self, role: Role, node: str, **kw: Any) -> MqttBus:
        # The deployment's viewer may not read snapshots: the harness's observer stands in for it.
        return self.broker.bus("observer" if role == Role.VIEWER else role, node, **kw)

    def crash(self, bus: MqttBus) -> None:
        """As if the process died: no more network loop, the socket closed without a DISCONNECT."""
        bus._client.loop_stop()
        sock = bus._client.socket()
        assert sock is not None
        sock.close()


@pytest.fixture(params=["fake", "mosquitto"])
def transport(request: pytest.FixtureRequest) -> Transport:
    if request.param == "fake":
        return Fake()
    return Real(request.getfixturevalue("broker"))


@pytest.fixture
def started() -> Iterator[list[MqttBus]]:
    """Buses a test started; stopped at the end."""
    buses: list[MqttBus] = []
    yield buses
    for bus in reversed(buses):
        bus.stop()


class Inbox:
    """A handler that queues what it gets, and waits for it."""

    def __init__(self) -> None:
        self.q: queue.Queue[Message] = queue.Queue()

    def __call__(self, msg: Message) -> None:
        self.q.put(msg)

    def next(self) -> Message:
        try:
            return self.q.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError("no message arrived") from None

    def empty(self) -> bool:
        return self.q.empty()


def run(started: list[MqttBus], bus: MqttBus) -> MqttBus:
    bus.start()
    assert bus.wait_connected(WAIT_S)
    started.append(bus)
    return bus


def unique() -> str:
    return new_id()[:10]  # the mosquitto broker is shared by the session: topics of this test only


def viewer(transport: Transport) -> MqttBus:
    return transport.bus(Role.VIEWER, f"test/viewer-{unique()}", persistent=False, announce=False)


def test_retained_messages_reach_early_and_late_subscribers(
    transport: Transport, started: list[MqttBus]
) -> None:
    topic = f"{T.prefix}/recognizer/conformance/{unique()}/state"
    early_inbox, late_inbox = Inbox(), Inbox()
    early = viewer(transport)
    early.subscribe(topic, early_inbox)
    run(started, early)
    rec = run(started, transport.bus(Role.RECOGNIZER, f"recognizer/{unique()}"))
    assert rec.publish_confirmed(topic, b"v1", retain=True)
    live = early_inbox.next()
    assert (live.payload, live.retain) == (b"v1", False)  # forwarded live: not flagged as retained

    late = run(started, viewer(transport))
    subscription = late.subscribe(topic, late_inbox)
    assert subscription.wait_ready(WAIT_S)
    replay = late_inbox.next()
    assert (replay.payload, replay.retain) == (b"v1", True)

    assert rec.publish_confirmed(topic, b"", retain=True)  # clears the retained message
    assert late_inbox.next().payload == b""
    again = Inbox()
    marker = f"{T.prefix}/recognizer/conformance/{unique()}/marker"
    assert late.subscribe(topic, again).wait_ready(WAIT_S)
    assert late.subscribe(marker, again).wait_ready(WAIT_S)  # SUBACKs in: the publish comes after
    assert rec.publish_confirmed(marker, b"m")
    assert again.next().topic == marker  # no replay came before the marker


def test_unsubscribe_stops_one_route_and_leaves_the_others(
    transport: Transport, started: list[MqttBus]
) -> None:
    base = f"{T.prefix}/recognizer/conformance/{unique()}"
    kept, dropped, other = Inbox(), Inbox(), Inbox()
    sub = run(started, viewer(transport))
    sub.subscribe(f"{base}/a", kept)
    unsubscribe = sub.subscribe(f"{base}/a", dropped)
    unsubscribe_b = sub.subscribe(f"{base}/b", other)
    sub.subscribe(f"{base}/marker", other)
    rec = run(started, transport.bus(Role.RECOGNIZER, f"recognizer/{unique()}"))

    unsubscribe()  # the filter keeps a route: still subscribed
    unsubscribe_b()  # its last route: UNSUBSCRIBE
    for topic in (f"{base}/a", f"{base}/b", f"{base}/marker"):
        assert rec.publish_confirmed(topic, b"x")
    assert kept.next().topic == f"{base}/a"
    assert other.next().topic == f"{base}/marker"  # in order from one publisher: /b never came
    assert dropped.empty() and other.empty()


def test_a_message_is_acknowledged_only_after_its_handler_returned(
    transport: Transport, started: list[MqttBus]
) -> None:
    camera = unique()
    node = f"recognizer/{camera}"
    entered, release = threading.Event(), threading.Event()
    handled: list[bytes] = []

    def slow(msg: Message) -> None:
        handled.append(msg.payload)
        if msg.payload == b"stuck":
            entered.set()
            release.wait(WAIT_S)

    victim = transport.bus(Role.RECOGNIZER, node)
    victim.subscribe(T.snapshot(camera), slow)
    victim.start()
    assert victim.wait_connected(WAIT_S)
    cam = run(started, transport.bus(Role.CAMERA, f"camera/{camera}"))
    assert cam.publish_confirmed(T.snapshot(camera), b"done")
    assert cam.publish_confirmed(T.snapshot(camera), b"stuck")
    assert entered.wait(WAIT_S)
    transport.crash(victim)  # mid-work: "stuck" was never acknowledged, "done" was

    heir_inbox = Inbox()
    heir = transport.bus(Role.RECOGNIZER, node)  # the same client id: the same session
    heir.subscribe(T.snapshot(camera), heir_inbox)
    run(started, heir)
    redelivered = heir_inbox.next()
    release.set()
    assert redelivered.payload == b"stuck"
    assert cam.publish_confirmed(T.snapshot(camera), b"after")
    assert heir_inbox.next().payload == b"after"  # and "done" never came again
    assert handled == [b"done", b"stuck"]


def test_handler_failures_are_reported_and_the_next_message_is_handled(
    transport: Transport, started: list[MqttBus]
) -> None:
    node = f"recognizer/{unique()}"
    errors, handled = Inbox(), Inbox()

    def on_train(msg: Message) -> None:
        if msg.payload == b"bad":
            raise parse_error()
        if msg.payload == b"boom":
            raise RuntimeError("exploded")
        handled(msg)

    watch = viewer(transport)
    watch.subscribe(T.error(node), errors)
    run(started, watch)
    rec = transport.bus(Role.RECOGNIZER, node)
    rec.subscribe(T.train, on_train)
    run(started, rec)
    admin = run(started, transport.bus(Role.ADMIN, f"admin/{unique()}", announce=False))
    for payload in (b"bad", b"boom", b"fine"):
        assert admin.publish_confirmed(T.train, payload)
    assert handled.next().payload == b"fine"
    first, second = (parse(ErrorReport, errors.next().payload) for _ in range(2))
    assert (first.error, first.topic, first.node) == ("bad_payload", T.train, node)
    assert (second.error, "exploded" in second.detail) == ("handler_failed", True)


def parse_error() -> Exception:
    try:
        parse(ErrorReport, b"{")
    except Exception as exc:
        return exc
    raise AssertionError("parse accepted a broken payload")


def test_a_shared_subscription_gives_each_message_to_one_member(
    transport: Transport, started: list[MqttBus]
) -> None:
    camera = unique()
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    for name in ("r1", "r2"):
        member = transport.bus(Role.RECOGNIZER, f"recognizer/{camera}-{name}")
        member.subscribe(f"$share/{camera}/{T.snapshot(camera)}", lambda m, n=name: got.put((n, m.payload)))
        run(started, member)
    cam = run(started, transport.bus(Role.CAMERA, f"camera/{camera}"))
    sent = [f"s{i}".encode() for i in range(6)]
    for payload in sent:
        assert cam.publish_confirmed(T.snapshot(camera), payload)
    received = [got.get(timeout=WAIT_S) for _ in sent]
    assert sorted(p for _n, p in received) == sorted(sent)
    marker = Inbox()
    late = run(started, viewer(transport))
    assert late.subscribe(T.snapshot(camera), marker).wait_ready(WAIT_S)
    assert cam.publish_confirmed(T.snapshot(camera), b"marker")
    assert marker.next().payload == b"marker"
    assert got.qsize() <= 1  # nothing was delivered twice (the marker itself goes to one member)


def test_a_persistent_session_keeps_what_came_while_away(
    transport: Transport, started: list[MqttBus]
) -> None:
    node = f"notifier/{unique()}"
    inbox = Inbox()
    first = transport.bus(Role.NOTIFIER, node)
    first.subscribe(T.all_alerts, inbox)
    first.start()
    assert first.wait_connected(WAIT_S)
    first.stop()
    rec = run(started, transport.bus(Role.RECOGNIZER, f"recognizer/{unique()}"))
    assert rec.publish_confirmed(T.alert(unique()), b"while-you-were-away")
    again = transport.bus(Role.NOTIFIER, node)
    again.subscribe(T.all_alerts, inbox)
    run(started, again)
    assert inbox.next().payload == b"while-you-were-away"


def test_the_last_will_says_offline_and_a_clean_stop_says_stopped(
    transport: Transport, started: list[MqttBus]
) -> None:
    crashing, leaving = f"camera/{unique()}", f"camera/{unique()}"
    states = Inbox()
    watch = viewer(transport)
    watch.subscribe(T.available(crashing), states)
    watch.subscribe(T.available(leaving), states)
    run(started, watch)
    buses = [transport.bus(Role.CAMERA, node) for node in (crashing, leaving)]
    for bus in buses:
        bus.start()
        assert bus.wait_connected(WAIT_S)
    assert {(m.topic, m.payload) for m in (states.next(), states.next())} == {
        (T.available(crashing), b"online"),
        (T.available(leaving), b"online"),
    }
    transport.crash(buses[0])
    buses[1].stop()
    last = {m.topic: m.payload for m in (states.next(), states.next())}
    assert last == {T.available(crashing): b"offline", T.available(leaving): b"stopped"}


def test_overlapping_filters_get_a_copy_each(transport: Transport, started: list[MqttBus]) -> None:
    """Known MQTT behaviour the fake reproduces: a session with two filters matching one topic gets two
    copies, and the bus hands each copy to every matching handler. Nodes avoid overlapping filters."""
    base = f"{T.prefix}/recognizer/conformance/{unique()}"
    wide, narrow = Inbox(), Inbox()
    sub = run(started, viewer(transport))
    assert sub.subscribe(f"{base}/#", wide).wait_ready(WAIT_S)
    assert sub.subscribe(f"{base}/x", narrow).wait_ready(WAIT_S)
    rec = run(started, transport.bus(Role.RECOGNIZER, f"recognizer/{unique()}"))
    assert rec.publish_confirmed(f"{base}/x", b"1")
    assert rec.publish_confirmed(f"{base}/marker", b"m")
    assert [wide.next().payload for _ in range(3)] == [b"1", b"1", b"m"]
    assert [narrow.next().payload for _ in range(2)] == [b"1", b"1"] and narrow.empty()


def test_the_local_bus_returns_when_the_handlers_it_set_off_are_done() -> None:
    bus = LocalBus("test/chain")
    seen: list[tuple[bytes, str]] = []
    bus.subscribe(f"{T.prefix}/a", lambda m: bus.publish(f"{T.prefix}/b", m.payload + b"!"))
    bus.subscribe(f"{T.prefix}/b", lambda m: seen.append((m.payload, threading.current_thread().name)))
    bus.inject(f"{T.prefix}/a", b"x")
    assert seen == [(b"x!", "bus-test/chain")]  # on the worker, and finished before inject returned
