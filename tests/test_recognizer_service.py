"""RecognizerService on the in-memory bus, with the real models and a real gallery."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image

from homesec.contract import (
    Alert,
    GalleryResult,
    GallerySummary,
    Payload,
    RecognitionResult,
    SnapshotMeta,
    TrainRequest,
    TrainResult,
    Verdict,
    meta_property,
    parse,
    parse_meta,
)
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.conftest import FACES
from tests.face_frames import small_face_frame
from tests.helpers import LocalBus

NODE = "recognizer/main"


def photo(name: str) -> bytes:
    return (FACES / name).read_bytes()


def blank() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 90, 90)).save(out, format="JPEG")
    return out.getvalue()


def make(tmp_path: Path, rec: Recognizer, **options: object) -> tuple[RecognizerService, LocalBus]:
    settings = RecognizerSettings(models_dir=rec.models_dir, **options)
    bus = LocalBus(NODE)
    service = RecognizerService(settings, tmp_path, bus, recognizer=rec)
    service.start()
    bus.start()
    return service, bus


@pytest.fixture
def svc(tmp_path: Path, rec: Recognizer) -> tuple[RecognizerService, LocalBus]:
    return make(tmp_path, rec)


def snapshot(
    bus: LocalBus,
    data: bytes,
    camera: str = "door",
    seq: int = 0,
    meta_camera: str | None = None,
    size: tuple[int, int] = (1000, 1000),
    motion_box: tuple[int, int, int, int] | None = None,
    trigger: str = "pir",
) -> None:
    meta = SnapshotMeta(
        camera=meta_camera or camera,
        event_id="e1",
        seq=seq,
        burst=3,
        trigger=trigger,  # type: ignore[arg-type]
        width=size[0],
        height=size[1],
        motion_box=motion_box,
    )
    bus.inject(bus.topics.snapshot(camera), data, user_properties=meta_property(meta))


def train(bus: LocalBus, name: str, label: str, largest: bool = False) -> TrainRequest:
    image_b64 = base64.b64encode(photo(name)).decode()
    req = TrainRequest(request_id="corr-1", label=label, image_b64=image_b64, largest=largest)
    # as the Requester sends it: the correlation data is the request id
    bus.inject(bus.topics.train, req, response_topic="homesec/reply/admin/c1", correlation_data=b"corr-1")
    return req


P = TypeVar("P", bound=Payload)


def results(bus: LocalBus, model: type[P], topic: str) -> list[P]:
    return [parse(model, p) for p in bus.payloads(topic)]


def test_summary_is_retained_at_start(svc: tuple[RecognizerService, LocalBus]) -> None:
    _, bus = svc
    summary = parse(GallerySummary, bus.retained[bus.topics.gallery].payload)
    assert summary.labels == {} and summary.model == "yunet-2023mar+sface-2021dec"


def test_train_then_recognize_known_and_unknown(svc: tuple[RecognizerService, LocalBus]) -> None:
    _, bus = svc
    t = bus.topics
    req = train(bus, "obama_train.jpg", "obama")
    (answer,) = results(bus, TrainResult, t.train_result)
    assert answer.ok and answer.request_id == req.request_id and answer.faces_found == 1
    replies = [m for m in bus.published if m.topic == "homesec/reply/admin/c1"]
    assert len(replies) == 1 and replies[0].correlation_data == b"corr-1"
    assert parse(GallerySummary, bus.retained[t.gallery].payload).labels == {"obama": 1}

    snapshot(bus, photo("obama_probe.jpg"), seq=0)
    snapshot(bus, photo("stranger.png"), seq=1)
    known, unknown = results(bus, RecognitionResult, t.result("door"))
    assert known.verdict == "known" and known.faces[0].label == "obama" and known.node == NODE
    assert {"detect", "embed", "total", "match"} <= set(known.timings_ms)
    assert unknown.verdict == "unknown" and unknown.faces[0].closest == "obama"
    (alert_msg,) = [m for m in bus.published if m.topic == t.alert("door")]
    alert = parse_meta(Alert, alert_msg.user_properties)
    assert alert.seq == 1 and alert.verdict == "unknown" and alert.faces[0].label is None
    assert Image.open(io.BytesIO(alert_msg.payload)).format == "JPEG"


def test_a_requested_snapshot_is_sent_even_when_everyone_is_known(
    svc: tuple[RecognizerService, LocalBus],
) -> None:
    _, bus = svc
    train(bus, "obama_train.jpg", "obama")
    snapshot(bus, photo("obama_probe.jpg"), seq=0)  # the PIR saw the owner: no alert
    assert not [m for m in bus.published if m.topic == bus.topics.alert("door")]
    snapshot(bus, photo("obama_probe.jpg"), seq=1, trigger="manual")  # /snapshot: show me the door
    (alert_msg,) = [m for m in bus.published if m.topic == bus.topics.alert("door")]
    alert = parse_meta(Alert, alert_msg.user_properties)
    assert alert.requested and alert.verdict == "known" and alert.faces[0].label == "obama"


def test_no_face_alert_follows_the_setting(tmp_path: Path, rec: Recognizer) -> None:
    for enabled in (True, False):
        _, bus = make(tmp_path / str(enabled), rec, alert_on_no_face=enabled)
        snapshot(bus, blank())
        (result,) = results(bus, RecognitionResult, bus.topics.result("door"))
        assert result.verdict == "no_face" and result.faces == []
        assert len(bus.payloads(bus.topics.alert("door"))) == int(enabled)


def test_motion_box_in_the_cameras_pixel_space(svc: tuple[RecognizerService, LocalBus]) -> None:
    _, bus = svc
    train(bus, "obama_train.jpg", "obama")
    frame = small_face_frame()  # only the motion-box pass finds this face
    (w, h), (x1, y1, x2, y2) = frame.size, frame.box
    # the camera declared 2x the JPEG's size, and gives the motion box in its own pixels
    snapshot(bus, frame.jpeg, size=(w * 2, h * 2), motion_box=(2 * x1, 2 * y1, 2 * x2, 2 * y2))
    (result,) = results(bus, RecognitionResult, bus.topics.result("door"))
    assert [f.label for f in result.faces] == ["obama"]
    assert result.timings_ms["detect_roi"] > 0
    fx1, fy1, fx2, fy2 = result.faces[0].box  # in the JPEG's pixels
    assert x1 <= fx1 < fx2 <= x2 and y1 <= fy1 < fy2 <= y2


def test_bad_snapshots_are_reported_not_fatal(svc: tuple[RecognizerService, LocalBus]) -> None:
    _, bus = svc
    t = bus.topics
    bus.inject(t.snapshot("door"), photo("stranger.png"))  # no meta
    snapshot(bus, b"\xff\xd8 corrupt")
    snapshot(bus, photo("stranger.png"), meta_camera="garage")  # meta disagrees with the topic
    assert [e.error for e in bus.errors] == ["bad_payload"] * 3
    assert "meta" in bus.errors[0].detail and "not an image" in bus.errors[1].detail
    refused = results(bus, RecognitionResult, t.result("door"))  # whose it is can be read: answered
    assert [(r.verdict, r.faces) for r in refused] == [(Verdict.NO_FACE, [])] * 2
    assert [r.error for r in refused] == [e.detail for e in bus.errors[1:]]
    snapshot(bus, photo("stranger.png"))  # and the next good one is handled
    assert len(bus.payloads(t.result("door"))) == 3
    assert results(bus, RecognitionResult, t.result("door"))[-1].error is None


def test_training_refusals_are_answered(svc: tuple[RecognizerService, LocalBus]) -> None:
    _, bus = svc
    t = bus.topics
    train(bus, "two_faces.jpg", "group")
    bus.inject(t.train, b'{"v": 1, "label": "../x", "image_b64": ""}', correlation_data=b"r2")
    bus.inject(t.train, TrainRequest(label="ok", image_b64="@@not base64@@"), correlation_data=b"r3")
    group, bad_label, bad_b64 = results(bus, TrainResult, t.train_result)
    assert not group.ok and (group.reason or "").startswith("3 faces found")
    assert not bad_label.ok and bad_label.request_id == "r2" and "invalid label" in (bad_label.reason or "")
    assert not bad_b64.ok and bad_b64.reason == "image_b64 is not valid base64"
    assert [e.error for e in bus.errors] == ["bad_payload", "bad_payload"]
    assert parse(GallerySummary, bus.retained[t.gallery].payload).labels == {}


def test_raw_training_takes_the_label_from_the_topic(svc: tuple[RecognizerService, LocalBus]) -> None:
    _, bus = svc
    t = bus.topics
    bus.inject(t.train_raw("biden"), photo("biden_train.jpg"), user_properties={"request_id": "raw-1"})
    bus.inject(
        t.train_raw("nobody"), blank(), correlation_data=b"raw-2", response_topic="homesec/reply/admin/c9"
    )
    bus.inject(t.train_raw("biden"), b"garbage", correlation_data=b"raw-3")
    ok, no_face, garbage = results(bus, TrainResult, t.train_result)
    assert ok.ok and ok.request_id == "raw-1" and ok.label == "biden"
    assert not no_face.ok and no_face.request_id == "raw-2" and no_face.reason == "no face found"
    assert not garbage.ok and garbage.request_id == "raw-3" and "not an image" in (garbage.reason or "")
    assert len(bus.payloads("homesec/reply/admin/c9")) == 1
    assert [e.error for e in bus.errors] == ["bad_payload"]


def test_gallery_commands(svc: tuple[RecognizerService, LocalBus]) -> None:
    service, bus = svc
    t = bus.topics
    train(bus, "obama_train.jpg", "obama")
    train(bus, "obama_probe.jpg", "obama")
    enrollment = results(bus, TrainResult, t.train_result)[-1].enrollment_id
    train(bus, "biden_train.jpg", "biden")

    def cmd(**fields: object) -> GalleryResult:
        bus.inject(
            t.gallery_cmd,
            json.dumps({"v": 1, **fields}).encode(),  # as sent: the recognizer decodes (and refuses) it
            response_topic="homesec/reply/admin/c2",
            correlation_data=b"g",
        )
        return results(bus, GalleryResult, t.gallery_result)[-1]

    assert cmd(op="list").labels == {"biden": 1, "obama": 2}
    renamed = cmd(op="rename_label", label="biden", new_label="Joe Biden")
    assert renamed.ok and renamed.labels == {"Joe Biden": 1, "obama": 2}
    assert cmd(op="delete_enrollment", enrollment_id=enrollment).removed == 1
    missing = cmd(op="delete_label", label="nobody")
    assert not missing.ok and missing.reason == "no one is enrolled as 'nobody'"
    assert not cmd(op="delete_label").ok  # no label given
    deleted = cmd(op="delete_label", label="OBAMA")
    assert deleted.ok and deleted.removed == 1 and deleted.labels == {"Joe Biden": 1}
    assert parse(GallerySummary, bus.retained[t.gallery].payload).labels == {"Joe Biden": 1}
    assert len(bus.payloads("homesec/reply/admin/c2")) == 6
    bus.inject(t.gallery_cmd, b'{"v": 1, "op": "explode"}', correlation_data=b"g7")
    bad = results(bus, GalleryResult, t.gallery_result)[-1]
    assert not bad.ok and bad.request_id == "g7"
    service.stop()


def test_gallery_survives_a_restart(tmp_path: Path, rec: Recognizer) -> None:
    service, bus = make(tmp_path, rec)
    train(bus, "obama_train.jpg", "obama")
    service.stop()
    _, bus2 = make(tmp_path, rec)
    assert json.loads(bus2.retained[bus2.topics.gallery].payload)["labels"] == {"obama": 1}
    snapshot(bus2, photo("obama_probe.jpg"))
    assert results(bus2, RecognitionResult, bus2.topics.result("door"))[0].verdict == "known"
