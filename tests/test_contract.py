"""The MQTT contract checks itself: every model round-trips, bad values are refused with a reason that
names the field, topic builders and parsers are inverses, and the examples in docs/mqtt.md parse."""

from __future__ import annotations

import base64
import json
import re
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from homesec import contract
from homesec.contract import (
    Alert,
    ArchiveAnswer,
    ArchiveQuery,
    ArmCommand,
    ArmedState,
    CameraEnabled,
    CameraState,
    CaptureCommand,
    ContractError,
    DeleteEnrollment,
    DeleteLabel,
    Delivered,
    DismissVisitor,
    EnableCommand,
    EnrollFace,
    ErrorReport,
    Face,
    FaceSearch,
    GalleryResult,
    GallerySummary,
    LabelConflict,
    LastPerson,
    LastSeen,
    ListLabels,
    MergeLabels,
    MotionEvent,
    NameVisitor,
    NotLabel,
    Payload,
    RecognitionResult,
    RenameLabel,
    Role,
    SearchHit,
    SearchMeta,
    SearchRequest,
    SearchResult,
    ShowCommand,
    SnapshotMeta,
    Topics,
    Training,
    TrainMeta,
    TrainRequest,
    TrainResult,
    Trigger,
    TriggerMode,
    UndoNot,
    Verdict,
    VisitEvent,
    decode_search,
    decode_train,
    from_iso,
    meta_property,
    node_name,
    parse,
    parse_gallery_command,
    parse_meta,
    split_node,
    to_iso,
)

DOC = Path(__file__).parent.parent / "docs" / "mqtt.md"
T = Topics("homesec")
TS = "2026-11-22T04:30:12.101Z"
FACE = Face(box=(1, 2, 3, 4), score=0.9, label=None, similarity=0.2, closest="alice", visitor="7")
HIT = SearchHit(event_id="e1", camera="door", ts=TS, similarity=0.7, box=(1, 2, 3, 4), snapshot="a.jpg")

# One of every payload the contract defines (the test below fails when a new one is not listed here).
SAMPLES: list[Payload] = [
    ErrorReport(error="bad_payload", detail="d", topic="homesec/train", node="recognizer/main"),
    SnapshotMeta(
        camera="door",
        event_id="e1",
        seq=0,
        burst=3,
        trigger="motion",
        width=64,
        height=48,
        motion_box=(1, 2, 30, 40),
    ),
    MotionEvent(camera="door", event_id="e1", state="start", trigger="pir+motion", score=0.04),
    CameraEnabled(camera="door", enabled=False),
    CaptureCommand(burst=2),
    EnableCommand(enabled=True),
    ShowCommand(request_id="r"),
    CameraState(camera="door", state="error", reason="401 Unauthorized"),
    RecognitionResult(
        camera="door",
        event_id="e1",
        seq=0,
        verdict=Verdict.UNKNOWN,
        faces=[FACE],
        timings_ms={"total": 4.2},
        model="m",
        node="recognizer/main",
    ),
    RecognitionResult(
        camera="door",
        event_id="e1",
        seq=1,
        verdict=Verdict.NO_FACE,
        faces=[],
        timings_ms={},
        model="m",
        node="recognizer/main",
        error="not an image (no known image format)",
    ),
    Alert(camera="door", event_id="e1", seq=0, verdict=Verdict.UNKNOWN, faces=[FACE], snapshot_ts=TS),
    TrainMeta(largest=True, source="script"),
    TrainRequest(label="alice", image_b64="aGk=", largest=True, source="cli"),
    TrainResult(request_id="r", label="alice", ok=True, enrollment_id=3, faces_found=1, quality=0.9),
    ListLabels(),
    DeleteLabel(label="bob"),
    RenameLabel(label="bob", new_label="Bob Smith"),
    DeleteEnrollment(enrollment_id=4),
    NameVisitor(visitor=7, label="Carol"),
    DismissVisitor(visitor=7),
    MergeLabels(label="obama", into="owner"),
    NotLabel(label="alice", event_id="e1", seq=0, face=1),
    NotLabel(label="alice", image_b64="aGk="),
    EnrollFace(event_id="e1", seq=0, face=1, label="Carol", force=True),
    UndoNot(negative_id=3),
    GalleryResult(request_id="r", op="list", ok=True, labels={"alice": 2}),
    GalleryResult(
        request_id="r", op="list", ok=True, conflicts=[LabelConflict(label="a", other="b", similarity=0.8)]
    ),
    GallerySummary(labels={"alice": 2}, enrollments=2, model="m"),
    ArmedState(armed=True, by="cli"),
    ArmCommand(armed=False),
    Delivered(event_id="e1", camera="door", channel="telegram", chat_id="1", grouped=2),
    VisitEvent(
        event_type="known_person",
        camera="door",
        event_id="e1",
        verdict=Verdict.KNOWN,
        labels=["alice"],
        names=["Alice"],
        similarities=[0.7],
        visitors=["7"],
        frames=2,
        revision=1,
    ),
    LastPerson(camera="door", event_id="e1", label=None, name="unknown", visitor="7"),
    LastSeen(label="alice", name="Alice", camera="door", event_id="e1", similarity=0.7),
    SearchMeta(threshold=0.4, top=5),
    SearchRequest(image_b64="aGk=", top=3),
    SearchResult(request_id="s", ok=True, hits=[HIT]),
    ArchiveQuery(what="events", camera="door", verdict=Verdict.UNKNOWN, since=TS, limit=20),
    ArchiveAnswer(request_id="q", ok=True, total=1, events=[{"event_id": "e1"}]),
]


def _payload_classes() -> set[type[Payload]]:
    found, todo = set(), [Payload]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__ == contract.__name__ and not sub.__name__.startswith("_"):
                found.add(sub)
    return found


# ------------------------------------------------------------------------------------ round trips


def test_every_payload_has_a_sample() -> None:
    assert _payload_classes() == {type(s) for s in SAMPLES}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_every_payload_round_trips_through_json(sample: Payload) -> None:
    again = parse(type(sample), sample.to_json())
    assert again == sample and again.to_json() == sample.to_json()


def test_image_metadata_round_trips_through_the_meta_property() -> None:
    meta = SAMPLES[1]
    assert parse_meta(SnapshotMeta, meta_property(meta)) == meta


def test_gallery_commands_decode_into_their_own_class() -> None:
    for cmd in [s for s in SAMPLES if hasattr(s, "op") and not isinstance(s, GalleryResult)]:
        assert parse_gallery_command(cmd.to_json()) == cmd
        assert type(parse_gallery_command(cmd.model_dump())) is type(cmd)


# ------------------------------------------------------------------------------------------ times


def test_times_travel_as_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
    wire = json.loads(ArmedState(armed=True, ts=moment).to_json())
    assert wire["ts"] == "2026-12-01T08:00:00.123Z"
    assert to_iso(1796112000.5) == "2026-12-01T08:00:00.500Z"
    assert json.loads(ArmedState(armed=True).to_json())["ts"].endswith("Z")  # the default: now


def test_any_offset_is_accepted_and_normalised_to_utc() -> None:
    got = parse(ArmedState, b'{"armed": true, "ts": "2026-12-01T09:00:00.5+01:00"}').ts
    assert got == datetime(2026, 12, 1, 8, 0, 0, 500000, tzinfo=UTC) and got.utcoffset() == timedelta(0)
    assert from_iso("2026-12-01T03:00:00-05:00") == datetime(2026, 12, 1, 8, tzinfo=UTC)
    local = datetime(2026, 12, 1, 9, tzinfo=timezone(timedelta(hours=1)))
    assert Alert(
        camera="d", event_id="e", seq=0, verdict=Verdict.NO_FACE, faces=[], snapshot_ts=local
    ).snapshot_ts == datetime(2026, 12, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-12-01T08:00:00", "has no UTC offset"),  # naive: whose 8 o'clock?
        ("yesterday", "not an ISO-8601 time"),
        ("2026-13-01T08:00:00Z", "not an ISO-8601 time"),
        ("0001-01-01T00:00:00+14:00", "out of range"),  # before year 1 in UTC
        ("9999-12-31T23:59:59-10:00", "out of range"),  # after 9999 in UTC
        ("0001-01-01T05:00:00Z", "out of range"),  # in range, but not in every local zone
        (1764576000, "expected an ISO-8601 time string"),
        (None, "expected an ISO-8601 time string"),
    ],
)
def test_bad_times_are_refused_naming_the_field(value: object, reason: str) -> None:
    raw = json.dumps(
        {"camera": "d", "event_id": "e", "seq": 0, "verdict": "unknown", "faces": [], "snapshot_ts": value}
    )
    with pytest.raises(ContractError, match=rf"^invalid Alert: snapshot_ts: .*{reason}"):
        parse(Alert, raw)
    hit = {**HIT.model_dump(), "ts": value}
    with pytest.raises(ContractError, match=rf"hits\.0\.ts: .*{reason}"):
        parse(SearchResult, json.dumps({"request_id": "s", "ok": True, "hits": [hit]}))


def test_every_accepted_time_can_be_shown_in_any_zone() -> None:
    for edge in ("0001-01-02T00:00:00Z", "9999-12-30T23:59:59.999Z"):
        moment = from_iso(edge)
        for offset in (timedelta(hours=-23, minutes=-59), timedelta(0), timedelta(hours=23, minutes=59)):
            moment.astimezone(timezone(offset)).strftime("%Y-%m-%d %H:%M")  # no OverflowError


# -------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"op": "delete_label"}, "delete_label: needs 'label'"),
        ({"op": "rename_label", "label": "a"}, "rename_label: needs 'new_label'"),
        ({"op": "delete_enrollment"}, "delete_enrollment: needs 'enrollment_id'"),
        ({"op": "name_visitor", "label": "obama"}, "name_visitor: needs 'visitor'"),
        ({"op": "name_visitor", "visitor": 7, "label": "../x"}, "name_visitor.label: invalid label '../x'"),
        ({"op": "list", "label": "a"}, "list.label: Extra inputs are not permitted"),
        ({"op": "zap"}, "op 'zap' is not one of 'list', 'delete_label', "),
        ({"label": "a"}, "needs 'op'"),
    ],
)
def test_bad_gallery_commands_are_refused_with_the_reason(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(ContractError, match="^invalid GalleryCommand: " + re.escape(reason)):
        parse_gallery_command(json.dumps(raw))


def test_refusals_name_the_field() -> None:
    with pytest.raises(ContractError, match=r"^invalid TrainRequest: needs 'label'$"):
        parse(TrainRequest, b'{"image_b64": ""}')
    with pytest.raises(ContractError, match=r"^invalid SnapshotMeta: trigger: Input should be 'pir'"):
        parse(SnapshotMeta, json.dumps({**SAMPLES[1].model_dump(), "trigger": "doorbell"}))
    with pytest.raises(ContractError, match=r"^invalid SearchMeta: top: Input should be less than or equal"):
        parse(SearchMeta, b'{"top": 5000}')
    with pytest.raises(ContractError, match=r"^invalid ArmCommand: v: Input should be 1"):
        parse(ArmCommand, b'{"v": 2, "armed": true}')


def test_the_trigger_a_camera_waits_for_is_a_trigger() -> None:
    assert set(typing.get_args(TriggerMode)) < set(typing.get_args(Trigger))
    for mode in typing.get_args(Trigger):
        assert MotionEvent(camera="d", event_id="e", state="end", trigger=mode).trigger == mode


# ----------------------------------------------------------------------------------------- topics


def test_topic_parsers_invert_the_builders() -> None:
    t = Topics("house")
    for build in (
        t.snapshot,
        t.motion,
        t.camera_enabled,
        t.camera_cmd_capture,
        t.camera_cmd_enable,
        t.result,
        t.alert,
    ):
        assert t.camera_from_topic(build("garden")) == "garden"
    for node in ("camera/door", "recognizer/r1", "notifier/main"):
        assert t.node_from_available(t.available(node)) == node
    assert t.label_from_train_raw(t.train_raw("Alice Smith")) == "Alice Smith"
    assert t.levels(t.result("door")) == ["recognizer", "result", "door"]
    assert split_node(node_name(Role.CAMERA, "door")) == ("camera", "door")
    assert node_name(Role.NOTIFIER, "main") == "notifier/main"
    for bad in ("camera", "/door", "camera/Door", "camera/a/b"):
        with pytest.raises(ContractError, match="node"):
            split_node(bad)
    with pytest.raises(ContractError, match="invalid node id"):
        node_name(Role.CAMERA, "a/b")


@pytest.mark.parametrize(
    ("parser", "topic", "reason"),
    [
        ("camera_from_topic", "house/recognizer/gallery", "no camera id"),
        ("camera_from_topic", "other/camera/door/snapshot", "no camera id"),
        ("camera_from_topic", "house/camera/Door!/snapshot", "invalid camera 'Door!'"),
        ("node_from_available", "house/camera/door/error", "not an availability topic"),
        ("node_from_available", "house/camera/available", "not an availability topic"),
        ("node_from_available", "house/camera/../available", "invalid node id '..'"),
        ("label_from_train_raw", "house/train/..", "invalid label"),
        ("label_from_train_raw", "house/training/alice", "not a training topic"),
        ("levels", "homesec/camera/door/motion", "not under house/"),
    ],
)
def test_topic_parsers_refuse_what_the_builders_cannot_make(parser: str, topic: str, reason: str) -> None:
    with pytest.raises(ContractError, match=re.escape(reason)):
        getattr(Topics("house"), parser)(topic)


# ---------------------------------------------------------------------- one request, two wire forms

JPEG = b"\xff\xd8\xff\xe0 not really a jpeg"
B64 = base64.b64encode(JPEG).decode()


def test_both_training_forms_decode_into_the_same_request() -> None:
    as_json = TrainRequest(request_id="r1", label="alice", image_b64=B64, largest=True, source="cli")
    from_json = decode_train(T, T.train, as_json.to_json(), {}, None)
    meta = meta_property(TrainMeta(request_id="r1", largest=True, source="cli"))
    from_jpeg = decode_train(T, T.train_raw("alice"), JPEG, meta, None)
    expected = Training(request_id="r1", label="alice", image=JPEG, largest=True, source="cli")
    assert from_json == from_jpeg == expected


def test_a_raw_jpeg_without_meta_takes_the_defaults() -> None:
    req = decode_train(T, T.train_raw("bob"), JPEG, {}, None)
    assert (req.label, req.image, req.largest, req.source) == ("bob", JPEG, False, "mqtt-raw")
    assert len(req.request_id) == 32  # a new id


def test_the_request_id_is_the_correlation_data_else_the_requests_own_else_new() -> None:
    json_form = TrainRequest(request_id="body", label="a", image_b64=B64).to_json()
    assert decode_train(T, T.train, json_form, {}, "corr").request_id == "corr"
    assert decode_train(T, T.train, json_form, {}, None).request_id == "body"
    raw = T.train_raw("a")
    assert decode_train(T, raw, JPEG, {"request_id": "prop"}, "corr").request_id == "corr"
    assert decode_train(T, raw, JPEG, {"request_id": "prop"}, None).request_id == "prop"
    assert decode_train(T, raw, JPEG, meta_property(TrainMeta(request_id="m")), None).request_id == "m"
    search = SearchRequest(request_id="body", image_b64=B64).to_json()
    assert decode_search(search, {}, "corr").request_id == "corr"
    assert decode_search(search, {}, None).request_id == "body"


def test_both_search_forms_decode_into_the_same_request() -> None:
    from_json = decode_search(SearchRequest(request_id="s", image_b64=B64, top=3).to_json(), {}, None)
    from_jpeg = decode_search(JPEG, meta_property(SearchMeta(request_id="s", top=3)), None)
    assert from_json == from_jpeg == FaceSearch(request_id="s", image=JPEG, threshold=None, top=3)


@pytest.mark.parametrize(
    ("decode", "reason"),
    [
        (
            lambda: decode_train(T, T.train, b'{"label": "a", "image_b64": "@@"}', {}, None),
            "^image_b64 is not valid base64$",
        ),
        (lambda: decode_train(T, T.train, b'{"label": "../a", "image_b64": ""}', {}, None), "invalid label"),
        (lambda: decode_train(T, T.train_raw(".."), JPEG, {}, None), "invalid label"),
        (lambda: decode_train(T, T.train_raw("a"), JPEG, {"meta": "{"}, None), "not JSON"),
        (
            lambda: decode_train(T, T.train_raw("a"), JPEG, {"meta": '{"label": "b"}'}, None),
            "invalid TrainMeta: label: Extra inputs",
        ),
        (lambda: decode_search(b'{"image_b64": "!!!"}', {}, None), "^image_b64 is not valid base64$"),
        (lambda: decode_search(JPEG, {}, None), "not JSON"),  # a JPEG needs its meta
        (lambda: decode_search(JPEG, {"meta": '{"top": 0}'}, None), "invalid SearchMeta: top"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(decode: Callable[[], object], reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode()


def test_images_stay_out_of_reprs() -> None:
    assert "not really" not in repr(Training(request_id="r", label="a", image=JPEG))


# ------------------------------------------------------------------------------------ the document


class _DiscoveryConfig(BaseModel):
    """What every Home Assistant discovery config of homesec's holds (tests/test_home_assistant.py checks
    each platform's whole schema)."""

    model_config = ConfigDict(extra="allow")
    unique_id: str
    device: dict[str, object]
    origin: dict[str, object]
    availability: list[dict[str, str]]


_MODELS: dict[str, Callable[[str], BaseModel]] = {
    T.error("<node>"): lambda raw: parse(ErrorReport, raw),
    T.snapshot("<camera>"): lambda raw: parse(SnapshotMeta, raw),
    T.motion("<camera>"): lambda raw: parse(MotionEvent, raw),
    T.camera_enabled("<camera>"): lambda raw: parse(CameraEnabled, raw),
    T.camera_cmd_enable("<camera>"): lambda raw: parse(EnableCommand, raw),
    T.camera_cmd_capture("<camera>"): lambda raw: parse(CaptureCommand, raw),
    T.camera_cmd_show("<camera>"): lambda raw: parse(ShowCommand, raw),
    T.camera_state("<camera>"): lambda raw: parse(CameraState, raw),
    T.result("<camera>"): lambda raw: parse(RecognitionResult, raw),
    T.alert("<camera>"): lambda raw: parse(Alert, raw),
    T.gallery: lambda raw: parse(GallerySummary, raw),
    T.train: lambda raw: parse(TrainRequest, raw),
    T.train_raw("<label>"): lambda raw: parse(TrainMeta, raw),
    T.train_result: lambda raw: parse(TrainResult, raw),
    T.gallery_cmd: parse_gallery_command,
    T.gallery_result: lambda raw: parse(GalleryResult, raw),
    T.search_cmd: lambda raw: parse(
        SearchRequest if "image_b64" in raw or "event_id" in raw else SearchMeta, raw
    ),
    T.search_result: lambda raw: parse(SearchResult, raw),
    T.archive_cmd: lambda raw: parse(ArchiveQuery if '"what"' in raw else ArchiveAnswer, raw),
    T.armed: lambda raw: parse(ArmedState, raw),
    T.armed_cmd: lambda raw: parse(ArmCommand, raw),
    T.delivered: lambda raw: parse(Delivered, raw),
    T.ha_discovery("<component>", "<object_id>"): lambda raw: _DiscoveryConfig.model_validate_json(raw),
    T.ha_visit("<camera>"): lambda raw: parse(VisitEvent, raw),
    T.ha_last_person("<camera>"): lambda raw: parse(LastPerson, raw),
    T.ha_last_seen("<person>"): lambda raw: parse(LastSeen, raw),
}


def _doc_examples() -> list[tuple[str, str]]:
    """(topic, JSON text) for every JSON example under a `### topic` heading of docs/mqtt.md."""
    examples, topic = [], None
    for block in re.split(r"^(### `[^`]+`.*|```json\n(?:.|\n)*?\n```)$", DOC.read_text(), flags=re.M):
        if heading := re.match(r"### `([^`]+)`", block):
            topic = heading.group(1)
        elif block.startswith("```json") and topic is not None:
            text, decoder, at = block[len("```json") : -len("```")].strip(), json.JSONDecoder(), 0
            while at < len(text):
                _, end = decoder.raw_decode(text, at)
                examples.append((topic, text[at:end]))
                at = end + (len(text[end:]) - len(text[end:].lstrip()))
    return examples


def test_every_json_example_in_the_doc_fits_the_contract() -> None:
    examples = _doc_examples()
    assert {topic for topic, _ in examples} == set(_MODELS)  # every JSON topic has an example
    for topic, raw in examples:
        try:
            _MODELS[topic](raw)
        except ContractError as exc:
            pytest.fail(f"docs/mqtt.md, {topic}: {exc}\n{raw}")
