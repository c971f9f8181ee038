"""Home Assistant MQTT discovery (homeassistant_node): every discovery payload against Home Assistant's
documented options for its platform, every topic in the contract and open to the `homeassistant` user
as it needs on a real mosquitto; the commands Home Assistant sends (its templates rendered with Jinja,
as it renders them) change the real camera's and notifier's state; a person trained and forgotten on
the real recognizer appears and goes; Home Assistant's birth message brings everything again."""

from __future__ import annotations

import base64
import inspect
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from camera_node.service import CameraService
from homeassistant_node.entities import EVENT_TYPES, Catalog, Entity, person_id, person_object_id
from homeassistant_node.house import House, Publication
from homeassistant_node.service import HomeAssistantBridge
from homeassistant_node.settings import HomeAssistantSettings
from homesec.bus import Message
from homesec.config import Config
from homesec.contract import (
    ArmCommand,
    ArmedState,
    CameraEnabled,
    CameraState,
    CaptureCommand,
    DeleteLabel,
    EnableCommand,
    Face,
    GalleryResult,
    GallerySummary,
    LastPerson,
    LastSeen,
    MotionEvent,
    RecognitionResult,
    Role,
    SnapshotMeta,
    Topics,
    TrainRequest,
    TrainResult,
    Verdict,
    VisitEvent,
    VisitState,
    meta_property,
    parse,
)
from homesec.remote import RemoteClient
from notifier_node.service import NotifierService
from notifier_node.settings import NotifierSettings
from tests.conftest import FACES
from tests.mqtt_helpers import Broker, Collector, publish_reason, raw_client
from tests.test_camera_service import camera_settings

T = Topics()
CAM = "door"
HA = str(Role.HOMEASSISTANT)
BRIDGE = "habridge/main"
CATALOG = Catalog(T, "0.1.0", BRIDGE)
PEOPLE = {"obama": "Obama", "Rose A.": "Rose"}  # a label with a space and a dot, and a display name

# --------------------------------------------------------------- Home Assistant's documented options
# From Home Assistant's MQTT integration (homeassistant/components/mqtt/: schemas.py, config.py and each
# platform's module) and its documentation pages (integrations/<platform>.mqtt): the keys each platform
# accepts in a discovery payload, the ones it requires, and the values its enumerations allow.

COMMON = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "device",
    "origin",
    "enabled_by_default",
    "entity_category",
    "icon",
    "json_attributes_topic",
    "json_attributes_template",
    "object_id",
    "default_entity_id",
    "unique_id",
    "qos",
    "encoding",
    "name",
    "platform",
}
READ_ONLY = {"state_topic", "value_template"}
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {  # platform: (required, optional) besides COMMON
    "binary_sensor": (
        {"state_topic"},
        READ_ONLY
        | {"device_class", "expire_after", "force_update", "off_delay", "payload_on", "payload_off"},
    ),
    "sensor": (
        {"state_topic"},
        READ_ONLY
        | {"device_class", "expire_after", "force_update", "last_reset_value_template", "options"}
        | {"suggested_display_precision", "state_class", "unit_of_measurement"},
    ),
    "image": (set(), {"image_topic", "url_topic", "content_type", "image_encoding", "url_template"}),
    "event": ({"state_topic", "event_types"}, READ_ONLY | {"device_class"}),
    "switch": (
        {"command_topic"},
        {"state_topic", "value_template", "command_template", "device_class", "optimistic", "retain"}
        | {"payload_on", "payload_off", "state_on", "state_off"},
    ),
    "button": ({"command_topic"}, {"command_template", "device_class", "payload_press", "retain"}),
}
DEVICE_CLASSES = {
    "binary_sensor": {"motion", "problem", "occupancy", "presence", "connectivity", "running", "safety"},
    "sensor": {"timestamp", "enum", "duration"},
    "event": {"button", "doorbell", "motion"},
    "switch": {"outlet", "switch"},
    "button": {"identify", "restart", "update"},
}
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "model_id", "name", "hw_version"}
DEVICE_KEYS |= {"serial_number", "sw_version", "via_device", "suggested_area", "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
# Part of homeassistant/components/mqtt/abbreviations.py: a payload may use these short keys.
ABBREVIATIONS = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "dev": "device",
    "dev_cla": "device_class",
    "ent_cat": "entity_category",
    "ic": "icon",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_on": "payload_on",
    "pl_off": "payload_off",
    "pl_prs": "payload_press",
    "stat_cla": "state_class",
    "stat_t": "state_topic",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS = {"ids": "identifiers", "mf": "manufacturer", "mdl": "model", "sw": "sw_version"}


def expand(config: dict[str, Any]) -> dict[str, Any]:
    """What Home Assistant reads: abbreviated keys replaced by their full names, in the device too."""
    out = {ABBREVIATIONS.get(k, k): v for k, v in config.items()}
    if isinstance(out.get("device"), dict):
        out["device"] = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in out["device"].items()}
    if isinstance(out.get("availability"), list):
        out["availability"] = [
            {ABBREVIATIONS.get(k, k): v for k, v in a.items()} for a in out["availability"]
        ]
    return out


def check_schema(component: str, raw: dict[str, Any]) -> None:
    config = expand(raw)
    required, optional = PLATFORMS[component]
    assert required <= config.keys(), f"{component} needs {required - config.keys()}"
    unknown = config.keys() - required - optional - COMMON
    assert not unknown, f"{component}: unknown keys {unknown}"
    if component == "image":  # exactly one of the two
        assert ("image_topic" in config) != ("url_topic" in config)
        assert config.get("content_type") == "image/jpeg"
    if "device_class" in config:
        assert config["device_class"] in DEVICE_CLASSES[component]
    assert config.get("entity_category", "diagnostic") in {"config", "diagnostic"}
    assert config.get("availability_mode", "all") in {"all", "any", "latest"}
    assert config.get("state_class", "measurement") in {"measurement", "total", "total_increasing"}
    if component == "event":
        assert set(config["event_types"]) == set(EVENT_TYPES)
    device, origin = config["device"], config["origin"]
    assert {"identifiers", "name", "model", "sw_version"} <= device.keys() <= DEVICE_KEYS
    assert device["identifiers"] and all(isinstance(i, str) for i in device["identifiers"])
    assert "name" in origin and origin.keys() <= ORIGIN_KEYS
    assert isinstance(config["unique_id"], str) and config["unique_id"]
    avail = config["availability"]
    assert avail and "availability_topic" not in config  # the list form, not both
    assert all(a.keys() <= AVAILABILITY_KEYS and "topic" in a for a in avail)
    assert (len(avail) > 1) == (config.get("availability_mode") == "all")


def every_entity() -> list[Entity]:
    entities = CATALOG.system_entities()
    for camera in ("door", "gate"):
        entities += CATALOG.camera_entities(camera)
    return entities + [CATALOG.person_entity(label, name) for label, name in PEOPLE.items()]


# ------------------------------------------------------------------ templates, rendered as HA does


def render(template: str, payload: bytes | str) -> str:
    """A Home Assistant template: `value` is the payload (for a command template: the switch's
    payload_on or payload_off), `value_json` its JSON (when it is JSON)."""
    value = payload.decode() if isinstance(payload, bytes) else payload
    try:
        value_json = json.loads(value)
    except ValueError:
        value_json = None
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(value=value, value_json=value_json)


# ------------------------------------------------------------------------------- the payloads


def test_every_discovery_payload_fits_its_platform_schema() -> None:
    entities = every_entity()
    assert {e.component for e in entities} == set(PLATFORMS)
    for entity in entities:
        check_schema(entity.component, entity.config)
        assert expand(entity.config) == entity.config  # nothing abbreviated: the keys read as the docs
        json.dumps(entity.config)  # what goes on the wire
    ids = [e.config["unique_id"] for e in entities]
    assert len(ids) == len(set(ids))
    topics = [CATALOG.topic(e) for e in entities]
    assert len(topics) == len(set(topics))
    assert all(
        t.count("/") == 4 and t.endswith("/config") for t in topics
    )  # <prefix>/<c>/<node>/<obj>/config


def test_the_issue_s_entities_are_all_there() -> None:
    by_id = {e.object_id: e for e in every_entity()}
    per_camera = {
        "door_motion": "binary_sensor",
        "door_snapshot": "image",
        "door_alert": "image",
        "door_visit": "event",
        "door_last_person": "sensor",
        "door_enabled": "switch",
        "door_capture": "button",
    }
    system = {"system_armed": "switch", "system_people": "sensor"}
    for object_id, component in {**per_camera, **system}.items():
        assert by_id[object_id].component == component
    person = by_id[person_object_id("Rose A.")]
    assert person.config["device_class"] == "timestamp" and person.config["name"] == "Rose last seen"
    assert by_id["door_snapshot"].config["image_topic"] == T.snapshot(CAM)
    assert by_id["door_alert"].config["image_topic"] == T.alert(CAM)
    # several nodes: all of them must be online
    visit = by_id["door_visit"].config
    assert [a["topic"] for a in visit["availability"]] == [
        T.available("camera/door"),
        T.ha_recognizers,
        T.available(BRIDGE),
    ]


def _topics_of(config: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(topics Home Assistant reads, topics it writes) for one config."""
    reads = {config[k] for k in ("state_topic", "json_attributes_topic", "image_topic") if k in config}
    reads |= {a["topic"] for a in config["availability"]}
    writes = {config["command_topic"]} if "command_topic" in config else set()
    return reads, writes


def contract_topics(args: dict[str, list[tuple[str, ...]]]) -> set[str]:
    """What every builder of the contract names for these arguments (by parameter name)."""
    out: set[str] = set()
    for name, member in inspect.getmembers(Topics):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.add(getattr(T, name))
        elif callable(member):
            params = ",".join(list(inspect.signature(member).parameters)[1:])
            out |= {getattr(T, name)(*a) for a in args.get(params, [])}
    return out


ARGS: dict[str, list[tuple[str, ...]]] = {
    "camera": [("door",), ("gate",)],
    "node": [("camera/door",), ("camera/gate",), ("notifier/main",), (BRIDGE,)],
    "person": [(person_id(label),) for label in PEOPLE],
}


def test_every_topic_is_the_contract_s() -> None:
    known = contract_topics(ARGS)
    for entity in every_entity():
        reads, writes = _topics_of(entity.config)
        assert reads | writes <= known, f"{entity.object_id}: {(reads | writes) - known}"
        assert CATALOG.topic(entity) == T.ha_discovery(entity.component, entity.object_id)


def test_command_templates_make_the_payloads_the_contract_reads() -> None:
    by_id = {e.object_id: e.config for e in every_entity()}
    enable = by_id["door_enabled"]
    assert parse(EnableCommand, render(enable["command_template"], "OFF")).enabled is False
    assert parse(EnableCommand, render(enable["command_template"], "ON")).enabled is True
    armed = parse(ArmCommand, render(by_id["system_armed"]["command_template"], "ON"))
    assert armed.armed and armed.by == "homeassistant"
    parse(CaptureCommand, by_id["door_capture"]["payload_press"])
    # and the states read back as the switches' ON/OFF
    state = CameraEnabled(camera=CAM, enabled=False).to_json()
    assert render(enable["value_template"], state) == "OFF"
    assert render(by_id["system_armed"]["value_template"], ArmedState(armed=True).to_json()) == "ON"


def _samples() -> dict[str, bytes]:
    """A payload of the contract for each state topic of the door camera and the system."""
    return {
        T.motion(CAM): MotionEvent(camera=CAM, event_id="e1", state="start", trigger="pir").to_json(),
        T.camera_state(CAM): CameraState(camera=CAM, state="error", reason="401 Unauthorized").to_json(),
        T.camera_enabled(CAM): CameraEnabled(camera=CAM, enabled=True).to_json(),
        T.ha_last_person(CAM): LastPerson(camera=CAM, event_id="e1", label="obama", name="Obama").to_json(),
        T.armed: ArmedState(armed=False, by="cli").to_json(),
        T.gallery: GallerySummary(labels={"obama": 2, "Rose A.": 1}, enrollments=3, model="m").to_json(),
        T.ha_last_seen(person_id("obama")): LastSeen(
            label="obama", name="Obama", camera=CAM, event_id="e1", similarity=0.7
        ).to_json(),
    }


def test_templates_read_the_contract_s_payloads() -> None:
    """Each entity's value and attributes templates, rendered on a real payload of its state topic."""
    samples = _samples()
    wanted = {"binary_sensor": {"ON", "OFF"}, "switch": {"ON", "OFF"}}
    checked = 0
    for entity in [
        *CATALOG.system_entities(),
        *CATALOG.camera_entities(CAM),
        CATALOG.person_entity("obama", "Obama"),
    ]:
        config = entity.config
        if "value_template" not in config:
            continue
        payload = samples[config["state_topic"]]
        value = render(config["value_template"], payload)
        assert value in wanted.get(entity.component, {value}) and value, entity.object_id
        if config.get("device_class") == "timestamp":
            assert datetime.fromisoformat(value).tzinfo is not None
        if "json_attributes_template" in config:
            attributes = json.loads(
                render(config["json_attributes_template"], samples[config["json_attributes_topic"]])
            )
            assert isinstance(attributes, dict) and attributes, entity.object_id
        checked += 1
    assert checked == 7  # armed, people; motion, problem, last person, enabled; a last seen
    people = next(e for e in CATALOG.system_entities() if e.object_id == "system_people").config
    assert render(people["value_template"], samples[T.gallery]) == "2"
    attributes = json.loads(render(people["json_attributes_template"], samples[T.gallery]))
    assert attributes == {"people": ["obama", "Rose A."], "enrollments": 3}  # Jinja sorts ignoring case


def test_only_online_is_available() -> None:
    item = CATALOG.system_entities()[0].config["availability"][0]
    seen = {word: render(item["value_template"], word) for word in ("online", "offline", "stopped")}
    assert seen == {"online": "online", "offline": "offline", "stopped": "offline"}
    assert (item["payload_available"], item["payload_not_available"]) == ("online", "offline")


def test_the_mqtt_doc_shows_a_real_config() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "mqtt.md").read_text()
    section = doc.split("### `homeassistant/<component>/homesec/<object_id>/config`")[1]
    example = json.loads(section.split("```json")[1].split("```")[0])
    real = next(e for e in CATALOG.camera_entities(CAM) if e.object_id == f"{CAM}_enabled")
    assert example == real.config


# ------------------------------------------------------------------------ the house, as a unit


def _house(**kw: Any) -> House:
    return House(CATALOG, **kw)


def _result(
    seq: int, verdict: Verdict, *faces: Face, visit: VisitState | None = None, event: str = "e1"
) -> RecognitionResult:
    return RecognitionResult(
        camera=CAM,
        event_id=event,
        seq=seq,
        verdict=verdict,
        faces=list(faces),
        timings_ms={},
        model="m",
        node="recognizer/main",
        visit=visit,
    )


def _face(label: str | None, similarity: float, visitor: str | None = None) -> Face:
    return Face(box=(0, 0, 9, 9), score=0.9, label=label, similarity=similarity, visitor=visitor)


def test_one_event_per_visit_decision_with_the_names_of_all_its_frames() -> None:
    house = _house()
    house.on_gallery(GallerySummary(labels={"obama": 1}, names={"obama": "Obama"}, enrollments=1, model="m"))
    waiting = VisitState(verdict=Verdict.UNKNOWN, frames=1, decided=False)
    first = house.on_result(_result(0, Verdict.UNKNOWN, _face(None, 0.3, "7"), visit=waiting))
    assert [p.topic for p in first] == []  # nobody named yet, nothing decided
    decided = VisitState(verdict=Verdict.KNOWN, frames=2, decided=True, revision=0)
    out = house.on_result(_result(1, Verdict.KNOWN, _face("obama", 0.71), visit=decided))
    again = house.on_result(_result(1, Verdict.KNOWN, _face("obama", 0.71), visit=decided))  # a repeat
    topics = [p.topic for p in out]
    assert topics == [T.ha_last_seen(person_id("obama")), T.ha_visit(CAM), T.ha_last_person(CAM)]
    assert [p.topic for p in again] == []
    event = parse(VisitEvent, out[1].payload)
    assert (event.event_type, event.names, event.similarities, event.visitors, event.frames) == (
        "known_person",
        ["Obama"],
        [0.71],
        ["7"],
        2,
    )
    assert not out[1].retain and out[0].retain and out[2].retain
    assert parse(LastPerson, out[2].payload).name == "Obama"
    assert parse(LastSeen, out[0].payload).camera == CAM
    small = house.on_result(_result(0, Verdict.TOO_SMALL, event="e2"))  # a capture: no visit
    assert parse(VisitEvent, small[0].payload).event_type == "no_face" and len(small) == 1


def test_a_revision_fires_again_only_when_it_changes_the_visit_s_type() -> None:
    house = _house()
    stranger = _face(None, 0.1, "7")

    def revised(revision: int, verdict: Verdict, *faces: Face) -> list[str]:
        state = VisitState(verdict=verdict, frames=revision + 1, decided=True, revision=revision)
        return [p.topic for p in house.on_result(_result(revision, verdict, *faces, visit=state))]

    assert revised(0, Verdict.UNKNOWN, stranger) == [T.ha_visit(CAM), T.ha_last_person(CAM)]
    assert revised(1, Verdict.UNKNOWN, stranger) == [T.ha_last_person(CAM)]  # a better photo of them
    assert revised(2, Verdict.KNOWN, _face("obama", 0.6)) == [T.ha_visit(CAM), T.ha_last_person(CAM)]


def test_a_visit_of_long_ago_updates_the_state_but_fires_no_event() -> None:
    later = datetime.now(UTC) + timedelta(hours=5)  # results queued while the bridge was away
    house = House(CATALOG, clock=lambda: later)
    house.on_gallery(GallerySummary(labels={"obama": 1}, enrollments=1, model="m"))
    decided = VisitState(verdict=Verdict.KNOWN, frames=1, decided=True, revision=0)
    out = house.on_result(_result(0, Verdict.KNOWN, _face("obama", 0.8), visit=decided))
    assert [p.topic for p in out] == [T.ha_last_seen(person_id("obama")), T.ha_last_person(CAM)]


def test_a_person_forgotten_while_the_bridge_was_away_is_removed() -> None:
    house = _house()
    stale = CATALOG.topic(CATALOG.person_entity("bob", "Bob"))
    kept = CATALOG.topic(CATALOG.person_entity("obama", "Obama"))
    camera = CATALOG.topic(CATALOG.camera_entities(CAM)[0])
    for topic in (stale, kept, camera):  # its own retained configs, before the gallery is known
        assert house.on_own_config(topic, b"{}") == []
    out = house.on_gallery(GallerySummary(labels={"obama": 2}, enrollments=2, model="m"))
    removed = [(p.topic, p.payload, p.retain) for p in out if not p.payload]
    assert removed == [(stale, b"", True), (T.ha_last_seen(person_id("bob")), b"", True)]
    assert house.on_own_config(stale, b"") == []  # the removal coming back


def test_turned_off_it_removes_what_it_announced_and_sends_nothing() -> None:
    house = _house(enabled=False)
    topic = CATALOG.topic(CATALOG.camera_entities(CAM)[0])
    assert house.everything() == [] and house.on_available("camera/door", "online") == []
    assert [(p.topic, p.payload) for p in house.on_own_config(topic, b"{}")] == [(topic, b"")]


# ------------------------------------------------------------------------ on a real broker


class Bridge:
    """The bridge service on its own account, as `python -m homeassistant_node` runs it."""

    def __init__(self, broker: Broker, **settings: Any) -> None:
        self.bus = broker.bus(f"{Role.HA_BRIDGE}-main", BRIDGE)
        self.service = HomeAssistantBridge(HomeAssistantSettings(**settings), self.bus)
        self.service.start()
        self.bus.start()
        assert self.bus.wait_connected(10)

    def stop(self) -> None:
        self.service.stop()
        self.bus.stop()


@pytest.fixture
def bridge(fresh_broker: Broker) -> Iterator[Bridge]:
    b = Bridge(fresh_broker)
    yield b
    b.stop()


def _seen_or_next(ha: Collector, predicate: Callable[[Message], bool], timeout: float = 10) -> Message:
    """The first message so far that matches, else the next one (for state that does not change)."""
    found = next((m for m in list(ha.seen) if predicate(m)), None)
    return found or ha.wait_for(predicate, timeout)


def _config(ha: Collector, component: str, object_id: str, timeout: float = 10) -> dict[str, Any]:
    topic = T.ha_discovery(component, object_id)
    msg = _seen_or_next(ha, lambda m: m.topic == topic and bool(m.payload), timeout)
    config: dict[str, Any] = json.loads(msg.payload)
    check_schema(component, config)
    return config


def _state(ha: Collector, config: dict[str, Any], want: str, timeout: float = 10) -> Message:
    topic, template = config["state_topic"], config["value_template"]
    return ha.wait_for(lambda m: m.topic == topic and render(template, m.payload) == want, timeout)


def test_home_assistant_may_read_and_write_what_its_entities_use(fresh_broker: Broker) -> None:
    """On the real ACL: every topic a config reads is delivered to the homeassistant user, every
    command topic accepted from it; and nothing else of homesec's is writable by it."""
    broker = fresh_broker
    reads: set[str] = set()
    writes: set[str] = set()
    for entity in every_entity():
        r, w = _topics_of(entity.config)
        reads, writes = reads | r, writes | w
    ha = Collector(broker, *sorted(reads), f"{T.discovery_prefix}/#", role=HA)
    bridge_client, code = raw_client(broker, f"{Role.HA_BRIDGE}-main")
    publisher, _ = raw_client(broker, "publisher")
    client, _ = raw_client(broker, HA)
    try:
        assert code == 0
        for topic in sorted(reads):
            publish_reason(publisher, topic, b"probe")
            ha.topic(topic)
        for entity in every_entity():  # the bridge announces, Home Assistant reads
            assert publish_reason(bridge_client, CATALOG.topic(entity), b"{}") < 128
            ha.topic(CATALOG.topic(entity))
        for topic in sorted(writes):
            assert publish_reason(client, topic, b"{}") < 128, topic
        assert publish_reason(client, T.ha_status, b"online") < 128
        for topic in (T.armed, T.camera_enabled(CAM), T.train, T.gallery_cmd, T.ha_discovery("switch", "x")):
            assert publish_reason(client, topic) == 135, topic  # not Home Assistant's to write
        for topic in (T.armed_cmd, T.snapshot(CAM), T.train):
            assert publish_reason(bridge_client, topic) == 135, topic  # the bridge commands nothing
    finally:
        for c in (bridge_client, publisher, client):
            c.disconnect()
            c.loop_stop()
        ha.close()


def test_commands_from_home_assistant_change_the_camera_and_the_notifier(
    fresh_broker: Broker, bridge: Bridge, tmp_path: Path
) -> None:
    broker = fresh_broker
    ha = Collector(broker, f"{T.discovery_prefix}/#", T.camera_enabled(CAM), T.armed, T.motion(CAM), role=HA)
    cam_bus = broker.bus(f"camera-{CAM}", f"camera/{CAM}")
    camera = CameraService(
        camera_settings(
            id=CAM,
            trigger="manual",
            replay={"dir": str(FACES.parent / "replay" / "walk_in"), "fps": 20, "loop": True},
        ),
        tmp_path / "camera",
        cam_bus,
    )
    notifier_bus = broker.bus("notifier-main", "notifier/main")
    notifier = NotifierService(NotifierSettings(), tmp_path / "notifier", notifier_bus)
    for service, bus in ((camera, cam_bus), (notifier, notifier_bus)):
        service.start()
        bus.start()
    try:
        enabled = _config(ha, "switch", f"{CAM}_enabled")
        armed = _config(ha, "switch", "system_armed")
        capture = _config(ha, "button", f"{CAM}_capture")
        motion = _config(ha, "binary_sensor", f"{CAM}_motion")
        topic, template = enabled["state_topic"], enabled["value_template"]
        _seen_or_next(ha, lambda m: m.topic == topic and render(template, m.payload) == "ON")
        for value in ("OFF", "ON"):  # what Home Assistant publishes when the switch is flipped
            payload = render(enabled["command_template"], value)
            assert ha.bus.publish_confirmed(enabled["command_topic"], payload.encode())
            _state(ha, enabled, value)
        for value in ("OFF", "ON"):
            payload = render(armed["command_template"], value)
            assert ha.bus.publish_confirmed(armed["command_topic"], payload.encode())
            state = _state(ha, armed, value)
            assert parse(ArmedState, state.payload).by == "homeassistant"
        assert ha.bus.publish_confirmed(capture["command_topic"], capture["payload_press"].encode())
        start = _state(ha, motion, "ON")
        assert parse(MotionEvent, start.payload).trigger == "manual"
    finally:
        for service, bus in ((camera, cam_bus), (notifier, notifier_bus)):
            service.stop()
            bus.stop()
        ha.close()


def _event_of(topic: str, event_id: str) -> Callable[[Message], bool]:
    return lambda m: m.topic == topic and event_id.encode() in m.payload


def test_people_and_visits_from_the_real_recognizer(
    fresh_broker: Broker, bridge: Bridge, models_dir: Path, tmp_path: Path
) -> None:
    from recognizer_node.service import RecognizerService
    from recognizer_node.settings import RecognizerSettings

    broker = fresh_broker
    ha = Collector(
        broker,
        f"{T.discovery_prefix}/#",
        T.ha_visit(CAM),
        T.ha_last_person(CAM),
        T.ha_last_seen("+"),
        role=HA,
    )
    rec_bus = broker.bus(Role.RECOGNIZER, "recognizer/main")
    recognizer = RecognizerService(RecognizerSettings(models_dir=models_dir), tmp_path / "rec", rec_bus)
    recognizer.start()
    rec_bus.start()
    camera = broker.bus(Role.CAMERA, f"camera/{CAM}")  # plays the camera: its snapshots, its availability
    camera.start()
    admin = RemoteClient(Config(data_dir=tmp_path, mqtt=broker.settings(Role.ADMIN)))
    person = person_object_id("obama")
    try:
        assert rec_bus.wait_connected(10) and camera.wait_connected(10)
        visit = _config(ha, "event", f"{CAM}_visit")
        with admin:
            photo = base64.b64encode((FACES / "obama_train.jpg").read_bytes()).decode()
            req = TrainRequest(label="obama", image_b64=photo)
            assert admin.request(T.train, req, TrainResult, req.request_id, timeout=30).ok
            seen_config = _config(ha, "sensor", person, timeout=20)
            for event_id, photo_name in (("v1", "obama_probe.jpg"), ("v2", "stranger.png")):
                meta = SnapshotMeta(
                    camera=CAM, event_id=event_id, seq=0, burst=1, trigger="pir", width=10, height=10
                )
                assert camera.publish_confirmed(
                    T.snapshot(CAM), (FACES / photo_name).read_bytes(), user_properties=meta_property(meta)
                )
                msg = ha.wait_for(_event_of(visit["state_topic"], event_id), 30)
                event = json.loads(msg.payload)  # as Home Assistant takes it: event_type, the rest attributes
                assert event["event_type"] == {"v1": "known_person", "v2": "unknown_person"}[event_id]
                assert event["event_id"] == event_id and event["event_type"] in visit["event_types"]
                if event_id == "v1":
                    assert event["names"] == ["obama"] and event["similarities"][0] > 0.363
                    seen = _seen_or_next(ha, lambda m: m.topic == seen_config["state_topic"])
                    assert render(seen_config["value_template"], seen.payload).endswith("Z")
            last = _seen_or_next(ha, lambda m: m.topic == T.ha_last_person(CAM) and b'"v2"' in m.payload)
            assert parse(LastPerson, last.payload).name == "unknown"

            cmd = DeleteLabel(label="obama")
            assert admin.request(T.gallery_cmd, cmd, GalleryResult, cmd.request_id, timeout=30).ok
            ha.wait_for(lambda m: m.topic == T.ha_discovery("sensor", person) and m.payload == b"", 20)
            ha.wait_for(lambda m: m.topic == seen_config["state_topic"] and m.payload == b"")
    finally:
        camera.stop()
        recognizer.stop()
        rec_bus.stop()
        ha.close()


def test_home_assistant_s_birth_message_brings_everything_again(fresh_broker: Broker, bridge: Bridge) -> None:
    ha = Collector(fresh_broker, f"{T.discovery_prefix}/#", role=HA)
    try:
        _config(ha, "switch", "system_armed")
        ha.seen.clear()
        assert ha.bus.publish_confirmed(T.ha_status, b"online")
        again = ha.wait_for(lambda m: m.topic == T.ha_discovery("switch", "system_armed") and not m.retain)
        check_schema("switch", json.loads(again.payload))
        ha.topic(T.ha_discovery("sensor", "system_people"))
    finally:
        ha.close()


def test_another_discovery_prefix_is_used_everywhere(tmp_path: Path) -> None:
    """`[homeassistant] discovery_prefix`: the bridge announces under it, Home Assistant's rules follow."""
    from homesec.broker import Account, discovery_prefix, rules_for
    from homesec.config import load_config
    from tests.helpers import LocalBus

    toml = tmp_path / "c.toml"
    toml.write_text('[homeassistant]\ndiscovery_prefix = "ha"\n')
    assert discovery_prefix(load_config(toml, env={})) == "ha"
    assert discovery_prefix(load_config(None, env={})) == "homeassistant"
    rules = rules_for(Account(HA, Role.HOMEASSISTANT), Topics(discovery_prefix="ha"))
    assert (True, "subscribe", "ha/#") in rules and (True, "publish", "ha/status") in rules
    bus = LocalBus(BRIDGE)
    HomeAssistantBridge(HomeAssistantSettings(discovery_prefix="ha"), bus).start()
    bus.start()
    configs = [m.topic for m in bus.published if m.topic.endswith("/config")]
    assert configs and all(t.startswith("ha/") for t in configs)
    bus.published.clear()
    bus.inject("ha/status", b"online")  # Home Assistant's birth under that prefix
    assert {m.topic for m in bus.published} >= set(configs)


def _payload_is(want: bytes) -> Callable[[Message], bool]:
    return lambda m: m.payload == want


def test_recognition_is_available_while_any_replica_is_online(fresh_broker: Broker, bridge: Bridge) -> None:
    ha = Collector(fresh_broker, T.ha_recognizers, role=HA)
    publisher, _ = raw_client(fresh_broker, "publisher")
    try:
        # The bridge's first word, once it sees its own availability and no replica: live or retained,
        # depending on whether this subscription came first.
        ha.wait_for(_payload_is(b"offline"))
        start = len(ha.seen)
        for node, word, seen in (
            ("recognizer/main", b"online", b"online"),
            ("recognizer/r2", b"online", None),  # no change: nothing new
            ("recognizer/main", b"stopped", None),  # r2 still recognizes
            ("recognizer/r2", b"offline", b"offline"),  # its last will: nobody recognizes now
        ):
            publish_reason(publisher, T.available(node), word)
            if seen is not None:
                ha.wait_for(_payload_is(seen))
        assert [m.payload for m in ha.seen[start:]] == [b"online", b"offline"]
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        ha.close()


def test_broker_init_makes_home_assistant_s_credential_for_its_prefix(tmp_path: Path) -> None:
    from homesec.cli import main

    config = tmp_path / "c.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[homeassistant]\ndiscovery_prefix = "ha"\n')
    assert main(["--config", str(config), "broker", "init", "--port", "1884"]) == 0
    for user in (HA, f"{Role.HA_BRIDGE}-main"):
        secret = tmp_path / "secrets" / f"mqtt-{user}.password"
        assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_text().strip()) >= 24
    dynsec = json.loads((tmp_path / "broker" / "dynamic-security.json").read_text())
    roles = {r["rolename"]: {a["topic"] for a in r["acls"]} for r in dynsec["roles"]}
    assert {"ha/#", "ha/status"} <= roles[HA] and "homeassistant/#" not in roles[HA]
    assert "ha/+/homesec/+/config" in roles[f"{Role.HA_BRIDGE}-main"]


def test_with_photos_off_home_assistant_gets_no_photo(tmp_path: Path) -> None:
    """`[homeassistant] photos = false`: no image entity (one announced before is removed), and the broker
    that `homesec broker init` writes refuses the homeassistant user every snapshot and alert."""
    from homesec.broker import MosquittoProcess, free_port
    from homesec.cli import main
    from tests.mqtt_helpers import subscribe_reasons

    catalog = Catalog(T, "0.1.0", BRIDGE, photos=False)
    without = {"binary_sensor", "event", "sensor", "switch", "button"}
    assert {e.component for e in catalog.camera_entities(CAM)} == without
    image = CATALOG.topic(next(e for e in CATALOG.camera_entities(CAM) if e.component == "image"))
    assert House(catalog).on_own_config(image, b"{}") == [Publication(image, b"", True)]
    assert House(CATALOG).on_own_config(image, b"{}") == []

    config, port = tmp_path / "c.toml", free_port()
    config.write_text(f'data_dir = "{tmp_path}"\n[homeassistant]\nphotos = false\n')
    assert main(["--config", str(config), "broker", "init", "--port", str(port)]) == 0
    broker = MosquittoProcess(tmp_path / "broker" / "mosquitto.conf", port, tmp_path / "mosquitto.log")
    broker.start()
    client = None
    try:
        stand_in = Broker.__new__(Broker)  # the files `broker init` wrote, on its port
        stand_in.port = port
        password = (tmp_path / "secrets" / f"mqtt-{HA}.password").read_text().strip()
        client, code = raw_client(stand_in, HA, password=password, client_id="")
        assert code == 0
        photos, others = [T.snapshot(CAM), T.alert(CAM)], [T.motion(CAM), T.camera_enabled(CAM)]
        assert subscribe_reasons(client, photos + others) == [135, 135, 1, 1]
    finally:
        if client is not None:
            client.disconnect()
            client.loop_stop()
        broker.stop()


def _ha_entity_id(component: str, entity: Entity) -> str:
    """The entity id Home Assistant gives an entity with a device: `<domain>.<device name entity name>`,
    slugified as its `slugify` does (lower case, every run of other characters one `_`)."""
    full = f"{entity.config['device']['name']} {entity.config['name']}"
    return f"{component}.{re.sub(r'[^a-z0-9]+', '_', full.lower()).strip('_')}"


def test_the_automation_example_uses_the_real_entities_and_event_types() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "home-assistant.md").read_text()
    block = doc.split("## An automation")[1].split("```yaml")[1].split("```")[0]
    automation = yaml.safe_load(block)["automation"][0]
    ids = {_ha_entity_id(e.component, e) for e in [*CATALOG.system_entities(), *CATALOG.camera_entities(CAM)]}
    trigger = automation["triggers"][0]
    assert trigger["entity_id"] in ids
    # an event entity that comes back from unavailable restores its last event: that is no new visit
    assert {"unavailable", "unknown"} <= set(trigger["not_from"])
    for condition in automation["conditions"]:
        assert condition["entity_id"] in ids
        if condition.get("attribute") == "event_type":
            assert condition["state"] in EVENT_TYPES
    notify = automation["actions"][0]["data"]
    assert notify["data"]["image"].removeprefix("/api/image_proxy/") in ids
    event = VisitEvent(camera=CAM, event_id="e1", event_type="unknown_person", verdict=Verdict.UNKNOWN)
    for visitors, want in (([], "First time seen"), (["7"], "Seen before (visitor 7)")):
        attributes = {**event.model_dump(exclude={"event_type"}), "visitors": visitors}
        env = jinja2.Environment(undefined=jinja2.StrictUndefined)
        env.globals["state_attr"] = lambda entity_id, name, attributes=attributes: attributes[name]
        assert env.from_string(notify["message"]).render().strip() == want


def test_a_stranger_is_not_home_assistant_s_unknown_state() -> None:
    """`unknown` is Home Assistant's word for "no value" (`has_value()` false, shown greyed): the last
    person sensor says `stranger` for one, and a named person by their display name."""
    config = next(e for e in CATALOG.camera_entities(CAM) if e.object_id == f"{CAM}_last_person").config
    stranger = LastPerson(camera=CAM, event_id="e1", label=None, name="unknown", visitor="7").to_json()
    assert render(config["value_template"], stranger) == "stranger"
    known = LastPerson(camera=CAM, event_id="e2", label="rose", name="Rose").to_json()
    assert render(config["value_template"], known) == "Rose"


def test_the_image_ships_every_package_its_entry_points_name() -> None:
    """The Dockerfile installs homesec from the folders it copies, and loading the config loads every
    `homesec.nodes` plugin: a plugin whose package is not copied (the bridge's) stops every node of the
    image, the recognizer and the notifier too, with ModuleNotFoundError."""
    import tomllib

    repo = Path(__file__).parent.parent
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    targets = [*project["scripts"].values()]
    targets += [t for group in project["entry-points"].values() for t in group.values()]
    packages = {target.split(":")[0].split(".")[0] for target in targets}
    dockerfile = (repo / "Dockerfile").read_text().splitlines()
    copied = {line.split()[1].rstrip("/") for line in dockerfile if line.startswith("COPY ")}
    assert "homeassistant_node" in packages and packages <= copied, packages - copied
