"""One verdict per visit: the frames of a motion event decide together, and alert once."""

from __future__ import annotations

import numpy as np

from homesec.contract import Face, RecognitionResult, SnapshotMeta, Verdict, VisitState
from recognizer_node.visits import VisitDecision, Visits
from tests.helpers import FakeClock

Box = tuple[int, int, int, int]
rng = np.random.default_rng(7)
ALICE, BOB, STRANGER = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 128)).astype(np.float32))


def near(person: np.ndarray, noise: float = 0.3) -> np.ndarray:
    """Another sight of `person`: about 0.9-0.95 cosine to the first, as frames of a burst are."""
    v = person + noise * rng.normal(size=128).astype(np.float32) / np.sqrt(128)
    return v / np.linalg.norm(v)


def face(box: Box, label: str | None = None, similarity: float = 0.1, rejected: str | None = None) -> Face:
    return Face(box=box, score=0.9, label=label, similarity=similarity, quality=0.8, rejected=rejected)


def frame(
    visits: Visits, seq: int, faces: list[tuple[Face, np.ndarray | None]], burst: int = 3, event: str = "e1"
) -> tuple[VisitState, VisitDecision | None]:
    meta = SnapshotMeta(
        camera="door", event_id=event, seq=seq, burst=burst, trigger="pir", width=1920, height=1080
    )
    usable = [f for f, _ in faces if f.rejected is None]
    named = all(f.label for f in usable)
    verdict = Verdict.NO_FACE if not usable else Verdict.KNOWN if named else Verdict.UNKNOWN
    result = RecognitionResult(
        camera="door", event_id=event, seq=seq, verdict=verdict, faces=[f for f, _ in faces],
        timings_ms={}, model="m", node="recognizer/main",
    )  # fmt: skip
    return visits.add(meta, result, [e for _, e in faces], f"jpeg{seq}".encode())


def test_a_doubtful_first_frame_waits_and_a_later_frame_names_the_owner() -> None:
    visits = Visits(window_s=1.5, doubt_floor=0.25)
    state, decision = frame(visits, 0, [(face((900, 300, 960, 370), similarity=0.31), near(ALICE))])
    assert decision is None and not state.decided and state.verdict == Verdict.UNKNOWN
    state, decision = frame(visits, 1, [(face((905, 302, 975, 380), "alice", 0.62), near(ALICE))])
    assert decision is not None and decision.verdict == Verdict.KNOWN and not decision.alert
    assert state.decided and state.revision == 0 and state.frames == 2
    _, decision = frame(visits, 2, [(face((910, 305, 990, 392), "alice", 0.66), near(ALICE))])
    assert decision is None  # nothing changed


def test_a_clear_stranger_alerts_at_once_and_only_once() -> None:
    visits = Visits(doubt_floor=0.25)
    _, decision = frame(visits, 0, [(face((900, 300, 960, 370), similarity=0.05), near(STRANGER))])
    assert decision is not None and decision.alert and decision.verdict == Verdict.UNKNOWN
    for seq in (1, 2, 3, 4):  # the rest of the burst, and later frames of the same event (no better photo)
        _, again = frame(visits, seq, [(face((902, 300, 964, 372), similarity=0.08), near(STRANGER))])
        assert again is None


def test_the_alert_shows_the_largest_unnamed_face_of_the_burst() -> None:
    visits = Visits(doubt_floor=0.25)
    frame(visits, 0, [(face((900, 300, 950, 350), similarity=0.3), near(STRANGER))])
    frame(visits, 1, [(face((880, 290, 980, 390), similarity=0.3), near(STRANGER))])
    _, decision = frame(visits, 2, [(face((890, 295, 960, 365), similarity=0.3), near(STRANGER))])
    assert decision is not None and decision.alert
    assert decision.best.meta.seq == 1 and decision.best.jpeg == b"jpeg1"
    assert decision.frames == 3


def test_two_people_one_named_one_not_is_unknown_and_a_correction_does_not_alert() -> None:
    visits = Visits(doubt_floor=0.25)
    owner = (face((100, 100, 200, 200), "alice", 0.7), near(ALICE))
    other = (face((900, 300, 990, 390), similarity=0.3), near(BOB))
    frame(visits, 0, [owner, other])
    _, decision = frame(visits, 2, [owner, other])  # seq 1 was lost
    assert decision is not None and decision.verdict == Verdict.UNKNOWN and decision.alert
    # a later frame names the second person too: a correction of the visit, not a new alert
    state, later = frame(visits, 3, [(face((905, 300, 995, 392), "bob", 0.55), near(BOB))])
    assert later is not None and later.verdict == Verdict.KNOWN and not later.alert and later.revision == 1
    assert state.revision == 1


def test_a_face_that_moved_is_followed_by_its_embedding_and_a_new_face_is_news() -> None:
    visits = Visits(doubt_floor=0.25)
    frame(visits, 0, [(face((100, 100, 200, 200), "alice", 0.7), near(ALICE))], burst=1)
    _, moved = frame(visits, 1, [(face((700, 100, 800, 200), similarity=0.3), near(ALICE))], burst=1)
    assert moved is None  # the same face as before (named then), not a stranger
    _, stranger = frame(visits, 2, [(face((700, 100, 800, 200), similarity=0.1), near(STRANGER))], burst=1)
    assert stranger is not None and stranger.alert and stranger.verdict == Verdict.UNKNOWN


def test_a_lost_rest_of_the_burst_is_decided_when_the_window_closes() -> None:
    clock = FakeClock()
    visits = Visits(window_s=1.5, doubt_floor=0.25, clock=clock)
    _, decision = frame(visits, 0, [(face((900, 300, 960, 370), similarity=0.3), near(BOB))])
    assert decision is None and visits.pending() == 1
    clock.advance(1.4)
    assert visits.due() == []
    clock.advance(0.2)
    (late,) = visits.due()
    assert late.alert and late.verdict == Verdict.UNKNOWN and late.frames == 1
    assert visits.due() == [] and visits.pending() == 0


def test_a_repeated_frame_changes_nothing() -> None:
    visits = Visits(doubt_floor=0.25)
    frame(visits, 0, [(face((900, 300, 960, 370), similarity=0.3), near(BOB))])
    state, decision = frame(visits, 0, [(face((900, 300, 960, 370), similarity=0.3), near(BOB))])
    assert decision is None and state.frames == 1


def test_unusable_faces_only_is_told_at_once_when_it_alerts_at_all() -> None:
    visits = Visits(alert_on=frozenset({Verdict.UNKNOWN, Verdict.NO_FACE, Verdict.TOO_SMALL}))
    small = face((900, 300, 920, 320), rejected="face too small (20 px < 32 px)")
    _, decision = frame(visits, 0, [(small, None)])
    assert decision is not None and decision.alert and decision.verdict == Verdict.TOO_SMALL
    _, later = frame(visits, 1, [(face((880, 290, 980, 390), similarity=0.1), near(STRANGER))])
    assert later is not None and later.alert and later.verdict == Verdict.UNKNOWN


def test_a_second_stranger_later_in_the_visit_revises_its_alert() -> None:
    visits = Visits(doubt_floor=0.25)
    first = (face((900, 300, 990, 390), similarity=0.05), near(STRANGER))
    _, decision = frame(visits, 0, [first])
    assert decision is not None and decision.alert and decision.revision == 0
    _, same = frame(visits, 1, [first])
    assert same is None
    _, more = frame(visits, 2, [first, (face((100, 100, 190, 190), similarity=0.1), near(BOB))])
    assert more is not None and more.alert and more.revision == 1 and more.verdict == Verdict.UNKNOWN
