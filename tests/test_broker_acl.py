"""The project's broker config on a real mosquitto: authentication, each account's rules (MQTT v5 codes),
client ids bound to node users, the recognizers' shared group closed to everyone else."""

from __future__ import annotations

import inspect
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from homesec.broker import render_acl
from homesec.bus import Message
from homesec.contract import Topics
from tests.mqtt_helpers import Broker, publish_reason, raw_client, subscribe_reasons

NOT_AUTHORIZED = 135
GRANTED = 1  # QoS 1
T = Topics()
REPO = Path(__file__).parent.parent
# The deployment's accounts under test: camera door (gate is another camera), recognizer main, ...
CAMERA, RECOGNIZER, NOTIFIER = "camera-door", "recognizer-main", "notifier-main"
HA, BRIDGE = "homeassistant", "habridge-main"  # Home Assistant, and the bridge announcing homesec to it
ACCOUNTS = (CAMERA, RECOGNIZER, NOTIFIER, "admin", "viewer", HA, BRIDGE)


def test_committed_acl_is_the_rendered_one() -> None:
    assert (REPO / "mosquitto" / "acl").read_text() == render_acl("homesec")


def test_anonymous_and_wrong_password_are_refused(broker: Broker) -> None:
    _, code = raw_client(broker, None)
    assert code == NOT_AUTHORIZED
    _, code = raw_client(broker, CAMERA, password="not-the-password")
    assert code == NOT_AUTHORIZED
    client, code = raw_client(broker, CAMERA)
    assert code == 0
    client.disconnect()


# ------------------------------------------------------------------ every account x every contract topic

ARGS: dict[str, list[tuple[str, ...]]] = {
    "camera": [("door",), ("gate",)],
    "node": [
        (n,)
        for n in (
            *("camera/door", "camera/gate", "recognizer/main", "recognizer/r2", "notifier/main"),
            "habridge/main",
        )
    ],
    "component,object_id": [("switch", "system_armed"), ("sensor", "person_alice_123abc_last_seen")],
    "person": [("alice_123abc",)],
    "label": [("alice",)],
    "role,client": [("admin", "c1"), ("notifier", "c1")],
}


def contract_topics(t: Topics) -> list[str]:
    """Every topic the contract's builders name, for two cameras, every node and both requesters."""
    out: list[str] = []
    for name, member in inspect.getmembers(Topics):
        if name.startswith("_") or isinstance(member, property) or not callable(member):
            continue
        params = ",".join(list(inspect.signature(member).parameters)[1:])
        if params == "topic":  # a parser, not a builder
            continue
        out += [getattr(t, name)(*args) for args in ARGS[params]]
    for name, member in inspect.getmembers(Topics):
        topic = getattr(t, name) if isinstance(member, property) else "+"
        if not any(c in topic for c in "+$") and not topic.endswith("/"):
            out.append(topic)  # the topics without parameters (filters and the reply root: below)
    return sorted(set(out))


TOPICS = contract_topics(T)
EVERY_CAMERA = ("door", "gate")
PHOTOS = {T.snapshot(c) for c in EVERY_CAMERA} | {T.alert(c) for c in EVERY_CAMERA}
PHOTOS |= {T.camera_cmd_show(c) for c in EVERY_CAMERA}  # a photo shown to a camera
DISCOVERY = {t for t in TOPICS if t.startswith(T.discovery_prefix + "/")}  # Home Assistant's, not ours
CONFIGS = DISCOVERY - {T.ha_status}
AVAILABLE = {t for t in TOPICS if t.endswith("/available")}
DERIVED = {T.ha_visit(c) for c in EVERY_CAMERA} | {T.ha_last_person(c) for c in EVERY_CAMERA}
DERIVED |= {T.ha_last_seen("alice_123abc"), T.ha_recognizers}
# What the design says each account does; everything else must be refused.
MAY_PUBLISH = {
    CAMERA: {T.snapshot("door"), T.motion("door"), T.camera_enabled("door"), T.camera_state("door")}
    | {T.available("camera/door"), T.error("camera/door")},
    RECOGNIZER: {T.result(c) for c in EVERY_CAMERA}
    | {T.alert(c) for c in EVERY_CAMERA}
    | {T.gallery, T.train_result, T.gallery_result, T.search_result}
    | {T.available("recognizer/main"), T.error("recognizer/main")}
    | {T.reply("admin", "c1"), T.reply("notifier", "c1")}
    | {T.armed_cmd}
    | {T.camera_cmd_enable(c) for c in EVERY_CAMERA}  # the HTTP API's state routes
    | {T.camera_cmd_capture(c) for c in EVERY_CAMERA},  # and its capture route (the web page's button)
    NOTIFIER: {T.armed, T.delivered, T.available("notifier/main"), T.error("notifier/main")}
    | {T.train, T.train_raw("alice"), T.gallery_cmd, T.search_cmd, T.archive_cmd}  # every recognizer/cmd/
    | {T.camera_cmd_capture(c) for c in EVERY_CAMERA},
    "admin": {T.train, T.train_raw("alice"), T.gallery_cmd, T.search_cmd, T.archive_cmd, T.armed_cmd}
    | {T.camera_cmd_capture(c) for c in EVERY_CAMERA}
    | {T.camera_cmd_show(c) for c in EVERY_CAMERA}
    | {T.camera_cmd_enable(c) for c in EVERY_CAMERA},
    "viewer": set(),
    HA: {T.armed_cmd, T.ha_status}
    | {T.camera_cmd_enable(c) for c in EVERY_CAMERA}
    | {T.camera_cmd_capture(c) for c in EVERY_CAMERA},
    BRIDGE: CONFIGS | DERIVED | {T.available("habridge/main"), T.error("habridge/main")},
}
MAY_READ = {
    CAMERA: {T.camera_cmd_capture("door"), T.camera_cmd_enable("door"), T.camera_cmd_show("door")}
    | {T.result("door")},
    RECOGNIZER: {T.snapshot(c) for c in EVERY_CAMERA}
    | {T.train, T.train_raw("alice"), T.gallery_cmd, T.search_cmd, T.archive_cmd}
    | {t for t in TOPICS if t.endswith("/available")}
    | {T.camera_enabled(c) for c in EVERY_CAMERA}
    | {T.camera_state(c) for c in EVERY_CAMERA}
    | {T.armed},
    NOTIFIER: {T.alert(c) for c in EVERY_CAMERA}
    | {T.result(c) for c in EVERY_CAMERA}
    | {t for t in TOPICS if t.endswith("/available")}
    | {T.camera_enabled(c) for c in EVERY_CAMERA}
    | {T.gallery, T.armed, T.armed_cmd, T.reply("notifier", "c1")},
    "admin": set(TOPICS) - PHOTOS - DISCOVERY,
    "viewer": set(TOPICS) - PHOTOS - DISCOVERY,
    # the household's own screen: the photos of its image entities too, but not a photo shown to a camera
    HA: DISCOVERY
    | AVAILABLE
    | DERIVED
    | {T.armed, T.gallery}
    | {T.motion(c) for c in EVERY_CAMERA}
    | {T.camera_enabled(c) for c in EVERY_CAMERA}
    | {T.camera_state(c) for c in EVERY_CAMERA}
    | {T.snapshot(c) for c in EVERY_CAMERA}
    | {T.alert(c) for c in EVERY_CAMERA},
    BRIDGE: AVAILABLE | CONFIGS | {T.ha_status, T.gallery} | {T.result(c) for c in EVERY_CAMERA},
}
# Filters with wildcards and shared subscriptions: granted only to these accounts.
FILTERS = {
    "#": set(),
    f"{T.prefix}/#": {"admin", "viewer"},
    T.all_snapshots: {RECOGNIZER, HA},
    T.all_alerts: {NOTIFIER, HA},
    f"{T.discovery_prefix}/#": {HA},
    f"$share/{{group}}/{T.all_snapshots}": {RECOGNIZER},  # the deployment's own group
    f"$share/recognizer/{T.all_snapshots}": set(),  # a guess
    f"$share/{{group}}/{T.all_alerts}": set(),
}
END = b"end"


def test_the_table_names_every_account_and_topic() -> None:
    assert set(MAY_PUBLISH) == set(MAY_READ) == set(ACCOUNTS)
    assert all(MAY_READ[a] <= set(TOPICS) and MAY_PUBLISH[a] <= set(TOPICS) for a in ACCOUNTS)
    assert len(TOPICS) > 30


@pytest.fixture
def group_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker whose recognizer group is secret, as `homesec broker init` makes it."""
    b = Broker(tmp_path / "broker", group=None)
    b.start()
    yield b
    b.stop()


def _filters(broker: Broker) -> dict[str, set[str]]:
    return {f.replace("{group}", broker.files.group): who for f, who in FILTERS.items()}


class Reader:
    """One account's connection, subscribed to every contract topic and every filter."""

    def __init__(self, broker: Broker, account: str, filters: list[str]) -> None:
        self.account = account
        self.topics: set[str] = set()
        self.end = threading.Event()
        self.client, code = raw_client(broker, account)
        assert code == 0, f"{account} cannot connect"
        self.client.on_message = self._on
        self.reasons = dict(zip(filters, subscribe_reasons(self.client, filters), strict=True))

    def _on(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload == END:
            self.end.set()
        else:
            self.topics.add(msg.topic)


def test_every_account_publishes_and_reads_only_its_own_topics(group_broker: Broker) -> None:
    filters = _filters(group_broker)
    readers = {a: Reader(group_broker, a, [*TOPICS, *filters]) for a in ACCOUNTS}
    publisher, _ = raw_client(group_broker, "publisher")
    try:
        for account, reader in readers.items():
            for topic in TOPICS:
                want = GRANTED if topic in MAY_READ[account] else NOT_AUTHORIZED
                assert reader.reasons[topic] == want, f"{account} subscribing to {topic}"
            for f, who in filters.items():
                want = GRANTED if account in who else NOT_AUTHORIZED
                assert reader.reasons[f] == want, f"{account} subscribing to {f}"
        for topic in TOPICS:
            assert publish_reason(publisher, topic) == 0
        for account in ACCOUNTS:  # one publisher: each reader's end marker comes after the rest
            publish_reason(publisher, sorted(MAY_READ[account])[0], END)
        for account, reader in readers.items():
            assert reader.end.wait(10), f"{account} got no end marker"
            assert reader.topics == MAY_READ[account], f"{account} received what it may not read"
        for account, reader in readers.items():
            assert publish_reason(reader.client, "anything") == NOT_AUTHORIZED  # outside the prefix
            for topic in TOPICS:
                code = publish_reason(reader.client, topic)
                if topic in MAY_PUBLISH[account]:
                    assert code < 128, f"{account} should publish {topic}"  # 16: no subscriber
                else:
                    assert code == NOT_AUTHORIZED, f"{account} must not publish {topic}"
    finally:
        publisher.disconnect()
        for reader in readers.values():
            reader.client.disconnect()
            reader.client.loop_stop()


# ------------------------------------------------------------------------------- client ids, sessions


def test_no_other_credential_can_take_over_a_node_session(group_broker: Broker) -> None:
    snapshots: queue.Queue[bytes] = queue.Queue()
    rec = group_broker.bus(RECOGNIZER, "recognizer/main")
    rec.subscribe(rec.topics.shared_snapshots, lambda m: snapshots.put(m.payload))
    rec.start()
    try:
        assert rec.wait_connected(10)
        rec_id = group_broker.client_id(RECOGNIZER)
        assert rec_id is not None and rec_id != RECOGNIZER  # derived from its password: not guessable
        # The camera's credential with the recognizer's client id is refused outright.
        _, code = raw_client(group_broker, CAMERA, client_id=rec_id)
        assert code == NOT_AUTHORIZED
        # The recognizer's credential with another client id too (its session cannot be moved).
        _, code = raw_client(group_broker, RECOGNIZER, client_id="homesec-recognizer-main")
        assert code == NOT_AUTHORIZED
        # Nor can any other node credential use any node's client id.
        for account in group_broker.files.accounts:
            if account.bound and account.user != "camera-gate":
                node_id = group_broker.client_id(account.user)
                _, code = raw_client(group_broker, "camera-gate", client_id=node_id)
                assert code == NOT_AUTHORIZED, account.user
        # The people's users pick any id, but the node's is not one they can know.
        for who in ("admin", "viewer"):
            client, code = raw_client(group_broker, who, client_id=RECOGNIZER)
            assert code == 0
            client.disconnect()
        cam, _ = raw_client(group_broker, CAMERA)
        assert publish_reason(cam, T.snapshot("door"), b"still-mine") == 0
        assert snapshots.get(timeout=10) == b"still-mine"  # the session never moved
        assert rec.connected
        cam.disconnect()
    finally:
        rec.stop()


def _setter(event: threading.Event) -> Callable[[Message], None]:
    return lambda _m: event.set()


def test_two_commands_and_the_up_monitor_run_at_once(group_broker: Broker) -> None:
    """The CLI (admin) and `homesec up`'s monitor (viewer) are not bound to one id: none kicks another."""
    got: dict[str, threading.Event] = {}
    buses = []
    for user, n in (("admin", 1), ("admin", 2), ("viewer", 1), ("viewer", 2)):
        bus = group_broker.bus(user, f"cli/{user}{n}", persistent=False, announce=False)
        got[f"{user}{n}"] = event = threading.Event()
        bus.subscribe(T.armed, _setter(event))
        bus.start()
        assert bus.wait_connected(10)
        buses.append(bus)
    publisher, _ = raw_client(group_broker, "publisher")
    try:
        assert publish_reason(publisher, T.armed, b"{}") == 0
        assert all(e.wait(10) for e in got.values()), {k: e.is_set() for k, e in got.items()}
        assert all(bus.connected for bus in buses)
    finally:
        publisher.disconnect()
        for bus in buses:
            bus.stop()


def test_no_foreign_member_of_the_recognizer_group_reduces_what_the_recognizer_gets(
    group_broker: Broker,
) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    rec = group_broker.bus(RECOGNIZER, "recognizer/main")
    rec.subscribe(rec.topics.shared_snapshots, lambda m: got.put(m.payload))
    rec.start()
    real = rec.topics.shared_snapshots
    guesses = [f"$share/{g}/{T.all_snapshots}" for g in ("recognizer", "homesec", "recognizers")]
    intruders, stolen = [], []
    try:
        assert rec.wait_connected(10)
        for account in (CAMERA, NOTIFIER, "admin", "viewer"):
            client, code = raw_client(group_broker, account)
            assert code == 0
            client.on_message = lambda _c, _u, msg: stolen.append(msg.payload)
            assert subscribe_reasons(client, [real, *guesses]) == [NOT_AUTHORIZED] * 4
            intruders.append(client)
        cam, _ = raw_client(group_broker, CAMERA)
        sent = [f"snap-{i}".encode() for i in range(10)]
        for payload in sent:
            assert publish_reason(cam, T.snapshot("door"), payload) == 0
        assert sorted(got.get(timeout=10) for _ in sent) == sorted(sent)  # 10 of 10
        assert stolen == []
        cam.disconnect()
    finally:
        rec.stop()
        for client in intruders:
            client.disconnect()
            client.loop_stop()
