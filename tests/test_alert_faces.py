"""Which archived face enrolling from an alert means."""

from __future__ import annotations

from homesec.contract import Alert, Face, Verdict
from notifier_node.alert_faces import FaceRef, decode_ref, face_to_enroll


def face(box: tuple[int, int, int, int], label: str | None = None, rejected: str | None = None) -> Face:
    return Face(box=box, score=0.9, label=label, similarity=0.5, rejected=rejected)


def alert(*faces: Face) -> Alert:
    return Alert(
        camera="door", event_id="ev:1", seq=2, verdict=Verdict.UNKNOWN, faces=list(faces),
        snapshot_ts="2026-11-22T04:30:12.101Z",
    )  # fmt: skip


def test_the_largest_unnamed_usable_face_is_the_one_enrolled() -> None:
    shown = alert(
        face((0, 0, 300, 300), label="alice"),  # the largest, but named already
        face((400, 0, 480, 80)),
        face((500, 0, 700, 200), rejected="face too blurred (sharpness 0.4 < 1.0)"),
        face((800, 0, 900, 100)),
    )
    assert face_to_enroll(shown) == FaceRef("ev:1", 2, 3)


def test_a_named_face_when_no_other_and_none_when_no_usable_face() -> None:
    assert face_to_enroll(alert(face((0, 0, 90, 90), label="alice"))) == FaceRef("ev:1", 2, 0)
    assert face_to_enroll(alert(face((0, 0, 20, 20), rejected="face too small (20 px < 32 px)"))) is None
    assert face_to_enroll(alert()) is None


def test_references_survive_their_text_form_and_nothing_else_passes() -> None:
    ref = FaceRef("5f0c:8e", 12, 1)  # an event id may hold a colon: it comes last
    assert decode_ref(ref.encode()) == ref
    for text in (None, "", "x:1:e", "1:x:e", "1:2:", "12"):
        assert decode_ref(text) is None
    assert ref.enroll("Carol").model_dump(include={"event_id", "seq", "face", "label"}) == {
        "event_id": "5f0c:8e", "seq": 12, "face": 1, "label": "Carol",
    }  # fmt: skip
