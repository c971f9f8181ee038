"""Enrolling from an alert trains on the clean archived face, not on the photo with its boxes drawn.

A door camera's 1080p frame with a 100 px face: the alert's boxed photo gives an embedding about 0.8
(cosine) of the clean face's, so a household enrolling "from the alert" enrolled a different face.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from homesec.contract import EnrollFace, GalleryCommand, SnapshotMeta, Verdict, parse_gallery_command
from notifier_node.alert_faces import decode_ref, face_to_enroll
from recognizer_node.gallery import Gallery
from recognizer_node.operations import ARCHIVE_OFF, RecognizerOperations
from recognizer_node.pipeline import Recognizer
from tests.conftest import open_ops
from tests.face_frames import framed_face

FRAME = (1920, 1080)


@pytest.fixture
def ops(tmp_path: Path, rec: Recognizer) -> Iterator[RecognizerOperations]:
    o = open_ops(tmp_path / "door", rec)
    yield o
    o.close()


def door_frame(photo: str = "obama_train.jpg", face_px: int = 100) -> tuple[bytes, tuple[int, int, int, int]]:
    """`photo` scaled to a `face_px` face in a dark 1080p frame (JPEG q90), and its motion box."""
    framed = framed_face(photo, face_px, FRAME, (900, 300), quality=90)
    return framed.jpeg, framed.box


def snapshot(event: str, box: tuple[int, int, int, int], seq: int = 0) -> SnapshotMeta:
    return SnapshotMeta(
        camera="door", event_id=event, seq=seq, burst=1, trigger="pir",
        width=FRAME[0], height=FRAME[1], motion_box=box,
    )  # fmt: skip


def enrolled_embedding(gallery: Gallery, model: str, enrollment_id: int | None) -> np.ndarray:
    m = gallery.matrix(model)
    return m.embeddings[list(m.ids).index(enrollment_id)]


def clean_reference(tmp_path: Path, rec: Recognizer, jpeg: bytes) -> np.ndarray:
    """What enrolling the clean photo itself gives (in a gallery of its own)."""
    with Gallery(tmp_path / "reference.sqlite") as gallery:
        out = rec.enroll(jpeg, "reference", gallery, largest=True)
        assert out.ok, out.reason
        return enrolled_embedding(gallery, rec.embedder_id, out.enrollment_id)


@pytest.mark.parametrize("photo", ["obama_train.jpg", "stranger.png"])
def test_enrolling_from_an_alert_enrolls_the_clean_face(
    ops: RecognizerOperations, rec: Recognizer, tmp_path: Path, photo: str
) -> None:
    jpeg, box = door_frame(photo)
    result, alert = ops.recognize(snapshot("ev1", box), jpeg)
    assert result.verdict == Verdict.UNKNOWN and alert is not None
    reference = clean_reference(tmp_path, rec, jpeg)

    # What the alert used to be trained from: the boxed photo, a different face to the embedder.
    with Gallery(tmp_path / "boxed.sqlite") as boxed:
        out = rec.enroll(alert.jpeg, "boxed", boxed, largest=True)
        assert out.ok, out.reason
        assert float(reference @ enrolled_embedding(boxed, rec.embedder_id, out.enrollment_id)) < 0.95

    ref = face_to_enroll(alert.meta)  # what the notifier keeps for the alert's Enroll button
    assert ref is not None and decode_ref(ref.encode()) == ref
    answer = ops.gallery_command(ref.enroll("visitor"))
    assert answer.ok and answer.op == "enroll_face" and answer.enrolled == 1, answer.reason
    assert answer.labels == {"visitor": 1}
    enrolled = enrolled_embedding(ops.gallery, rec.embedder_id, answer.enrollment_id)
    assert float(reference @ enrolled) >= 0.99
    (enrollment,) = ops.gallery.enrollments("visitor")
    assert enrollment.source == "event:ev1/0#0"
    assert ops.gallery.crop(enrollment.id) is not None  # kept, so a later model can re-embed it


def test_without_kept_snapshots_the_archived_clean_crop_is_enrolled(tmp_path: Path, rec: Recognizer) -> None:
    jpeg, box = door_frame("obama_train.jpg")
    ops = open_ops(tmp_path / "door", rec, keep_snapshots=False)
    try:
        ops.recognize(snapshot("ev1", box), jpeg)
        answer = ops.gallery_command(EnrollFace(event_id="ev1", seq=0, face=0, label="barack"))
        assert answer.ok, answer.reason
        enrolled = enrolled_embedding(ops.gallery, rec.embedder_id, answer.enrollment_id)
    finally:
        ops.close()
    # the door's own detection of the face (its motion box, refined): as clean, a little apart
    assert float(clean_reference(tmp_path, rec, jpeg) @ enrolled) >= 0.95


def test_the_enrolled_face_is_named_at_the_next_visit(ops: RecognizerOperations) -> None:
    jpeg, box = door_frame("obama_train.jpg")
    _, alert = ops.recognize(snapshot("ev1", box), jpeg)
    assert alert is not None
    ops.gallery_command(EnrollFace(event_id="ev1", seq=0, face=0, label="barack"))
    later, later_box = door_frame("obama_probe.jpg", 110)
    result, again = ops.recognize(snapshot("ev2", later_box), later)
    assert [f.label for f in result.faces] == ["barack"] and again is None


def test_enroll_face_goes_through_the_identity_guard(ops: RecognizerOperations) -> None:
    jpeg, box = door_frame("obama_train.jpg")
    ops.recognize(snapshot("ev1", box), jpeg)
    assert ops.gallery_command(EnrollFace(event_id="ev1", seq=0, face=0, label="barack")).ok
    twice = ops.gallery_command(EnrollFace(event_id="ev1", seq=0, face=0, label="obama"))
    assert not twice.ok and twice.reason is not None and "looks like barack" in twice.reason
    forced = ops.gallery_command(EnrollFace(event_id="ev1", seq=0, face=0, label="obama", force=True))
    assert forced.ok and forced.labels == {"barack": 1, "obama": 1}


def test_enroll_face_refusals_say_why(tmp_path: Path, rec: Recognizer, ops: RecognizerOperations) -> None:
    missing = ops.gallery_command(EnrollFace(event_id="nope", seq=0, face=0, label="x"))
    assert not missing.ok and "no face 0 in archived snapshot nope/0" in (missing.reason or "")
    small, box = door_frame("obama_train.jpg", 40)  # recognized (>= 32 px), too small to enroll (< 60)
    result, _ = ops.recognize(snapshot("ev3", box), small)
    assert result.faces and result.faces[0].rejected is None
    tiny = ops.gallery_command(EnrollFace(event_id="ev3", seq=0, face=0, label="x"))
    assert not tiny.ok and "too small" in (tiny.reason or "")
    assert ops.gallery.labels() == {}
    off = open_ops(tmp_path / "no-archive", rec, enabled=False)
    try:
        assert off.gallery_command(EnrollFace(event_id="ev1", seq=0, face=0, label="x")).reason == ARCHIVE_OFF
    finally:
        off.close()


def test_the_command_reads_from_json_like_every_gallery_command() -> None:
    raw = '{"op": "enroll_face", "event_id": "ev1", "seq": 2, "face": 1, "label": "Alice"}'
    cmd: GalleryCommand = parse_gallery_command(raw, "r1")
    assert isinstance(cmd, EnrollFace) and (cmd.seq, cmd.face, cmd.request_id) == (2, 1, "r1")
