"""The recognizer's operations without any transport: decoded requests in, contract answers out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from homesec.contract import (
    ContractError,
    DeleteLabel,
    FaceSearch,
    GallerySummary,
    ListLabels,
    NameVisitor,
    RenameLabel,
    SnapshotMeta,
    Training,
    Verdict,
)
from recognizer_node.operations import ARCHIVE_OFF, RecognizerOperations
from recognizer_node.pipeline import Recognizer
from tests.conftest import FACES, open_ops
from tests.face_frames import small_face_frame

NODE = "recognizer/main"


def training(photo: str, label: str, request_id: str = "t1") -> Training:
    return Training(request_id=request_id, label=label, image=(FACES / photo).read_bytes())


def meta(event: str, seq: int = 0, trigger: str = "pir", **kw: object) -> SnapshotMeta:
    fields = {"camera": "door", "event_id": event, "seq": seq, "burst": 1, "trigger": trigger}
    return SnapshotMeta.model_validate({"width": 1, "height": 1, **fields, **kw})


def test_training_changes_the_gallery_and_tells_the_listeners(ops: RecognizerOperations) -> None:
    seen: list[GallerySummary] = []
    ops.on_gallery_change(seen.append)
    answer = ops.train(training("obama_train.jpg", "obama"))
    assert answer.ok and answer.request_id == "t1" and answer.faces_found == 1
    refused = ops.train(training("two_faces.jpg", "group", "t2"))
    assert not refused.ok and refused.request_id == "t2" and (refused.reason or "").startswith("3 faces")
    with pytest.raises(ContractError, match="not an image"):  # a broken request, not a refusal
        ops.train(Training(request_id="t3", label="x", image=b"garbage"))
    assert [s.labels for s in seen] == [{"obama": 1}]  # only the enrollment changed the gallery
    assert ops.summary.labels == {"obama": 1} and ops.summary.enrollments == 1


def test_gallery_commands_answer_and_refuse(ops: RecognizerOperations) -> None:
    seen: list[GallerySummary] = []
    ops.train(training("obama_train.jpg", "obama"))
    ops.on_gallery_change(seen.append)
    assert ops.gallery_command(ListLabels(request_id="g1")).labels == {"obama": 1}
    renamed = ops.gallery_command(RenameLabel(request_id="g2", label="obama", new_label="Barack"))
    assert renamed.ok and renamed.removed == 1 and renamed.labels == {"Barack": 1}
    missing = ops.gallery_command(DeleteLabel(request_id="g3", label="nobody"))
    assert not missing.ok and missing.reason == "no one is enrolled as 'nobody'"
    assert [s.labels for s in seen] == [{"Barack": 1}]  # listing and refusals change nothing


def test_recognize_returns_the_result_and_the_alert_it_calls_for(ops: RecognizerOperations) -> None:
    ops.train(training("obama_train.jpg", "obama"))
    probe = (FACES / "obama_probe.jpg").read_bytes()
    result, alert = ops.recognize(meta("e1"), probe)
    assert result.verdict == Verdict.KNOWN and result.node == NODE and alert is None
    result, alert = ops.recognize(meta("e2"), (FACES / "stranger.png").read_bytes())
    assert result.verdict == Verdict.UNKNOWN and alert is not None
    assert alert.meta.faces == result.faces and alert.jpeg[:2] == b"\xff\xd8"
    assert result.faces[0].visitor is not None  # archived: the stranger is a visitor now
    _, asked = ops.recognize(meta("e3", trigger="manual"), probe)
    assert asked is not None and asked.meta.requested and asked.meta.verdict == Verdict.KNOWN


def test_a_face_only_the_motion_box_finds_is_recognized_archived_and_searched(
    ops: RecognizerOperations,
) -> None:
    ops.train(training("obama_train.jpg", "obama"))
    frame = small_face_frame("obama_probe.jpg")
    w, h = frame.size
    result, _ = ops.recognize(meta("e1", width=w, height=h, motion_box=frame.box), frame.jpeg)
    assert [f.label for f in result.faces] == ["obama"] and result.timings_ms["detect_roi"] > 0
    stranger = small_face_frame("stranger.png")
    unknown, _ = ops.recognize(meta("e2", width=w, height=h, motion_box=stranger.box), stranger.jpeg)
    (face,) = unknown.faces
    assert face.label is None and face.visitor is not None  # 48 px: large enough for a visitor id
    found = ops.search(FaceSearch(request_id="s1", image=(FACES / "obama_probe.jpg").read_bytes()))
    assert found.ok and [h.event_id for h in found.hits] == ["e1"]


def test_without_an_archive_search_and_naming_are_refused(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec, enabled=False)
    result, _ = ops.recognize(meta("e1"), (FACES / "stranger.png").read_bytes())
    assert ops.history is None and result.faces[0].visitor is None
    search = ops.search(FaceSearch(request_id="s1", image=(FACES / "obama_probe.jpg").read_bytes()))
    assert not search.ok and search.request_id == "s1" and search.reason == ARCHIVE_OFF
    named = ops.gallery_command(NameVisitor(request_id="n1", visitor=1, label="x"))
    assert not named.ok and named.reason == ARCHIVE_OFF
    ops.close()


def test_a_search_photo_without_a_face_is_refused(ops: RecognizerOperations) -> None:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 90, 90)).save(out, format="JPEG")
    answer = ops.search(FaceSearch(request_id="s2", image=out.getvalue()))
    assert not answer.ok and answer.reason == "no face found in the query image"
