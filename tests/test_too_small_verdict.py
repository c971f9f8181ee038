"""A face too small to judge: its own verdict and alert, never an "unknown person" (no models needed)."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pytest

from homesec.contract import Alert, Face, Verdict
from notifier_node.caption import build_caption
from notifier_node.policy import Grouper
from recognizer_node.pipeline import AnalyzedFace, MatchedFace, verdict_of
from recognizer_node.quality import Gates, brightness, is_too_small

GATES = Gates(min_face_px=32, min_det_score=0.7, min_sharpness=1.0)


def matched(px: int, label: str | None = None, sharp: float = 5.0) -> MatchedFace:
    reason = GATES.reject_reason(px, 0.9, sharp)
    face = AnalyzedFace(
        box=(0, 0, px, px), score=0.9, landmarks=[], px=px, sharpness=sharp, quality=0.5,
        rejected=reason, crop=np.zeros((112, 112, 3), np.uint8),
    )  # fmt: skip
    return MatchedFace(face, label, None, None)


def test_size_refusals_are_told_apart_from_other_refusals() -> None:
    assert is_too_small(GATES.reject_reason(20, 0.9, 5.0))
    assert not is_too_small(GATES.reject_reason(80, 0.9, 0.2))  # blurred
    assert not is_too_small(GATES.reject_reason(80, 0.3, 5.0))  # weak detection
    assert not is_too_small(None)


def test_verdicts_with_small_faces() -> None:
    assert verdict_of([matched(20)]) is Verdict.TOO_SMALL
    assert verdict_of([matched(20), matched(80, sharp=0.2)]) is Verdict.TOO_SMALL
    assert verdict_of([matched(80, sharp=0.2)]) is Verdict.NO_FACE  # blurred only: nothing to say who
    assert verdict_of([]) is Verdict.NO_FACE
    # a usable face decides: a small one beside it changes nothing
    assert verdict_of([matched(20), matched(80)]) is Verdict.UNKNOWN
    assert verdict_of([matched(20), matched(80, "alice")]) is Verdict.KNOWN


def test_the_alert_says_someone_is_there_but_too_small_to_recognise() -> None:
    small = Face(
        box=(0, 0, 20, 24), score=0.9, label=None, similarity=None, rejected="face too small (20 px < 32 px)"
    )
    alert = Alert.model_validate(
        {"camera": "door", "event_id": "ev1", "seq": 0, "verdict": "too_small", "faces": [small.model_dump()],
         "snapshot_ts": "2024-07-01T18:30:05.000Z"}
    )  # fmt: skip
    text = build_caption(alert, UTC)
    assert text.startswith("👤 Someone, face too small to recognise, at door")
    assert "Unknown person" not in text and "face not used: face too small (20 px < 32 px)" in text


def test_a_small_face_outranks_motion_alone_and_an_unknown_face_outranks_both() -> None:
    g = Grouper(cooldown=60, clock=lambda: 1000.0)
    assert g.admit("door", "ev1", Verdict.NO_FACE).send
    assert g.admit("door", "ev1", Verdict.TOO_SMALL).send  # someone came into view: news
    assert not g.admit("door", "ev1", Verdict.TOO_SMALL).send
    assert not g.admit("door", "ev1", Verdict.NO_FACE).send
    assert g.admit("door", "ev1", Verdict.UNKNOWN).send  # now a face to judge
    assert not g.admit("door", "ev1", Verdict.TOO_SMALL).send


def test_a_small_face_in_dim_light_must_be_larger_to_be_judged() -> None:
    gates = Gates(min_face_px=28, min_det_score=0.7, min_sharpness=1.0, dim_min_face_px=38, dim_brightness=80)
    assert gates.reject_reason(32, 0.9, 5.0, bright=140.0) is None
    dim = gates.reject_reason(32, 0.9, 5.0, bright=50.0)
    assert is_too_small(dim) and dim == "face too small (32 px < 38 px in this light)"
    assert gates.reject_reason(40, 0.9, 5.0, bright=50.0) is None
    assert gates.reject_reason(26, 0.9, 5.0, bright=140.0) == "face too small (26 px < 28 px)"


def test_brightness_is_the_mean_grey_level_of_the_face_centre() -> None:
    face = np.zeros((112, 112, 3), np.uint8)
    face[16:96, 16:96] = 100
    face[:8] = 255  # the border (hair, background) does not count
    assert brightness(face) == pytest.approx(100.0)
    assert brightness(face // 2) == pytest.approx(50.0)
