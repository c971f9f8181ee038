"""One verdict per visit: the frames of a motion event (its burst, and any later frames) decide together.

Faces are followed across frames (the same place, or the same face by embedding). A person is named
when any frame names them; the visit is `unknown` only when a usable face stays unnamed in every
frame it was seen in. One alert per visit, with its best photo (the frame with the largest, sharpest
unnamed face); when a later frame of a visit already alerted shows its stranger clearly better
(`BETTER_PX` larger, or as large and `BETTER_QUALITY` sharper), the visit's next revision carries that
frame, so the alert's photo is replaced.

When to alert: a frame whose unknown face is clearly nobody enrolled (best similarity under
`doubt_floor`) alerts at once; a doubtful one (a face close to someone enrolled, which a better frame
of the same visit often names) waits for the burst's last frame or `window_s`, whichever comes first.
docs/accuracy.md has the measurements behind both figures (bench/visits.py).

While a visit waits, the results of its frames are held (`add(..., hold=True)`, `hold`) and handed back
with its decision, to be published after its alert: a result tells the camera its snapshot is done, so a
recognizer killed before the decision leaves the frames unconfirmed, the camera publishes them again,
and the visit is decided (and alerted) afresh. docs/reliability.md.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from homesec.contract import Face, RecognitionResult, SnapshotMeta, Verdict, VisitState
from recognizer_node.quality import is_too_small

Box = tuple[int, int, int, int]
VisitKey = tuple[str, str]  # camera, event id

# Cosine between one person's faces in consecutive frames of a burst (faces-dev, 36 and 60 px, clean and
# dark): min 0.54, 5th percentile 0.72, median 0.94; between two people's: at most 0.28.
SAME_FACE = 0.5  # at least this: the same face, wherever it is
OTHER_FACE = 0.35  # under this: two people, even in the same place
SAME_PLACE = 0.3  # box overlap (IoU) enough to follow a face whose embedding is missing or poor
UNNAMED = 10_000  # added to a photo's face size when the face is unnamed: any such photo ranks first
ALERT_ON = frozenset({Verdict.UNKNOWN})
# A later photo replaces the alert's when its unnamed face is this much larger (its shorter side), or as
# large and this much higher in quality (0..1, recognizer_node/quality.py): a burst's frames of one
# face differ by a few pixels and hundredths, which is not worth an edit of the message.
BETTER_PX = 1.2
BETTER_QUALITY = 0.1


@dataclass
class _Track:
    """One face followed across the frames of a visit."""

    box: Box
    embedding: np.ndarray | None
    usable: bool
    label: str | None = None
    similarity: float | None = None
    best_unnamed: tuple[int, float, int] | None = None  # (px, quality, seq) of its best unnamed sight


@dataclass
class Frame:
    """What is kept of a frame that may become the visit's photo."""

    meta: SnapshotMeta
    result: RecognitionResult
    jpeg: bytes = field(repr=False)


@dataclass(frozen=True)
class VisitDecision:
    """The visit's verdict now, the frame to show, and whether it calls for an alert now."""

    camera: str
    event_id: str
    verdict: Verdict
    frames: int
    faces: list[Face]  # one per followed face: its named sight, else its best one
    best: Frame
    alert: bool  # send (or correct) the alert now
    revision: int  # 0: the visit's first decision; then each change of verdict, face or photo
    held: list[RecognitionResult] = field(default_factory=list)  # frames' results to publish after it


@dataclass
class _Visit:
    camera: str
    event_id: str
    burst: int
    started: float
    tracks: list[_Track] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)  # parallel to tracks
    seqs: set[int] = field(default_factory=set)
    best: Frame | None = None
    best_rank: tuple[int, float] = (-1, -1.0)
    alerted: Frame | None = None  # the photo of its last alert, to send it again for a repeated frame
    alerted_rank: tuple[int, float] = (-1, -1.0)
    held: list[RecognitionResult] = field(default_factory=list)  # results waiting for the decision
    decided: Verdict | None = None
    revision: int = -1
    strangers: int = 0  # unnamed usable faces when last decided

    def verdict(self) -> Verdict:
        usable = [t for t in self.tracks if t.usable]
        if usable:
            return Verdict.KNOWN if all(t.label is not None for t in usable) else Verdict.UNKNOWN
        small = any(is_too_small(f.rejected) for f in self.faces)
        return Verdict.TOO_SMALL if small else Verdict.NO_FACE


class Visits:
    """The open visits, by camera and event; thread-safe (the bus worker adds, a timer closes)."""

    def __init__(
        self,
        window_s: float = 1.5,
        doubt_floor: float = 0.20,
        *,
        alert_on: frozenset[Verdict] = ALERT_ON,
        clock: Callable[[], float] = time.monotonic,
        keep: int = 32,  # visits remembered (each keeps one frame's JPEG); a forgotten one starts afresh
    ) -> None:
        self.window_s = window_s
        self.doubt_floor = doubt_floor
        self.alert_on = alert_on
        self._clock = clock
        self._keep = keep
        self._visits: OrderedDict[VisitKey, _Visit] = OrderedDict()
        self._lock = threading.Lock()

    def add(
        self,
        meta: SnapshotMeta,
        result: RecognitionResult,
        embeddings: list[np.ndarray | None],
        jpeg: bytes,
        *,
        hold: bool = False,
    ) -> tuple[VisitState, VisitDecision | None]:
        """Fold a frame into its visit: the visit's state, and the decision when this frame makes (or
        changes) one. With `hold`, the frame's result (with that state) is kept while the visit waits,
        and comes back in its decision's `held`: then the state says `decided` false."""
        with self._lock:
            visit = self._visit(meta)
            decision = None
            if meta.seq not in visit.seqs:  # a repeat changes nothing
                visit.seqs.add(meta.seq)
                _fold(visit, result, embeddings)
                self._keep_best(visit, Frame(meta, result, jpeg), result)
                decision = self._decision(visit, meta)
            state = _state(visit)
            if hold and visit.decided is None:
                _hold(visit, result.model_copy(update={"visit": state}))
            return state, decision

    def hold(self, result: RecognitionResult) -> bool:
        """Keep a frame's result (a repeat's) until its visit is decided; False when it is not waiting."""
        with self._lock:
            visit = self._visits.get((result.camera, result.event_id))
            if visit is None or visit.decided is not None:
                return False
            _hold(visit, result)
            return True

    def _decision(self, visit: _Visit, meta: SnapshotMeta) -> VisitDecision | None:
        if visit.decided is not None:
            news = visit.verdict() != visit.decided or _strangers(visit) > visit.strangers
            news = news or self._better_photo(visit)  # (a new unknown face, or a clearer one, is news too)
            return self._decide(visit) if news else None
        last = len(visit.seqs) >= visit.burst or meta.seq + 1 >= visit.burst
        return self._decide(visit) if last or not self._doubtful(visit) else None

    def due(self) -> list[VisitDecision]:
        """The decisions of the visits whose window closed before their burst was complete (alerting or
        not: each hands back the results it held)."""
        now = self._clock()
        with self._lock:
            late = [
                v for v in self._visits.values() if v.decided is None and now - v.started >= self.window_s
            ]
            return [self._decide(v) for v in late if v.best is not None]

    def photo(self, camera: str, event_id: str, seq: int) -> bytes | None:
        """The JPEG of frame `seq` when the visit still keeps it (its best frame, or its alert's)."""
        with self._lock:
            visit = self._visits.get((camera, event_id))
            frames = () if visit is None else (visit.best, visit.alerted)
            return next((f.jpeg for f in frames if f is not None and f.meta.seq == seq), None)

    def pending(self) -> int:
        with self._lock:
            return sum(1 for v in self._visits.values() if v.decided is None)

    def _visit(self, meta: SnapshotMeta) -> _Visit:
        key = (meta.camera, meta.event_id)
        visit = self._visits.get(key)
        if visit is None:
            visit = _Visit(meta.camera, meta.event_id, meta.burst, self._clock())
            self._visits[key] = visit
            while len(self._visits) > self._keep:
                self._visits.popitem(last=False)
        self._visits.move_to_end(key)
        return visit

    def _doubtful(self, visit: _Visit) -> bool:
        """Whether a later frame may well name the stranger: an unnamed face close to someone enrolled.
        (Someone there with no usable face yet is told at once, when that alerts at all: a face seen
        later is news on its own.)"""
        if visit.verdict() != Verdict.UNKNOWN:
            return False
        unnamed = [t for t in visit.tracks if t.usable and t.label is None]
        return any((t.similarity or 0.0) >= self.doubt_floor for t in unnamed)

    @staticmethod
    def _better_photo(visit: _Visit) -> bool:
        """Whether the visit's best frame shows its stranger clearly better than the alert's photo."""
        if visit.decided != Verdict.UNKNOWN or visit.alerted is None or visit.best is visit.alerted:
            return False
        (px, quality), (was_px, was_quality) = visit.best_rank, visit.alerted_rank
        if px < UNNAMED or was_px < UNNAMED:  # an unnamed face's photo replaces any other, never the reverse
            return px >= UNNAMED > was_px
        px, was_px = px - UNNAMED, was_px - UNNAMED
        return px >= was_px * BETTER_PX or (px >= was_px and quality >= was_quality + BETTER_QUALITY)

    def _decide(self, visit: _Visit) -> VisitDecision:
        verdict, before = visit.verdict(), visit.decided
        # A change alerts only when it is news: to a stranger, or to someone there from nobody. A
        # stranger later named is a correction, published with the visit, not a new alarm.
        news = before is None or before not in self.alert_on or verdict == Verdict.UNKNOWN
        return _decided(visit, verdict, verdict in self.alert_on and news)

    @staticmethod
    def _keep_best(visit: _Visit, frame: Frame, result: RecognitionResult) -> None:
        """The visit's photo: the frame with the largest, sharpest unnamed usable face (else the
        largest face of any kind)."""
        unnamed = [f for f in result.faces if f.rejected is None and f.label is None]
        pool = unnamed or result.faces
        px = max((_px(f.box) for f in pool), default=0)
        quality = max((f.quality or 0.0 for f in pool), default=0.0)
        rank = (px + (UNNAMED if unnamed else 0), quality)
        if visit.best is None or rank > visit.best_rank:
            visit.best, visit.best_rank = frame, rank


def _state(visit: _Visit) -> VisitState:
    decided = visit.decided is not None
    return VisitState(
        verdict=visit.verdict(),
        frames=len(visit.seqs),
        decided=decided,
        revision=visit.revision if decided else None,
    )


def _hold(visit: _Visit, result: RecognitionResult) -> None:
    visit.held = [r for r in visit.held if r.seq != result.seq] + [result]


def _fold(visit: _Visit, result: RecognitionResult, embeddings: list[np.ndarray | None]) -> None:
    taken: set[int] = set()
    for face, emb in zip(result.faces, embeddings, strict=True):
        index = _match(visit.tracks, face.box, emb, taken)
        usable = face.rejected is None and emb is not None
        if index is None:
            visit.tracks.append(_Track(face.box, emb, usable))
            visit.faces.append(face)
            index = len(visit.tracks) - 1
        taken.add(index)
        track = visit.tracks[index]
        track.box = face.box
        track.usable = track.usable or usable
        if emb is not None and usable:
            track.embedding = emb
        if face.label is not None and (track.similarity or -1.0) <= (face.similarity or 0.0):
            track.label, track.similarity = face.label, face.similarity
            visit.faces[index] = face
        elif track.label is None and usable:
            track.similarity = max(track.similarity or -1.0, face.similarity or -1.0)
            sight = (_px(face.box), face.quality or 0.0, result.seq)
            if track.best_unnamed is None or sight > track.best_unnamed:
                track.best_unnamed = sight
                visit.faces[index] = face


def _match(tracks: list[_Track], box: Box, emb: np.ndarray | None, taken: set[int]) -> int | None:
    """The track this face continues: the most similar face, else the most overlapping box."""
    best, best_score = None, 0.0
    for i, t in enumerate(tracks):
        if i in taken:
            continue
        compared = t.embedding is not None and emb is not None
        similar = float(t.embedding @ emb) if t.embedding is not None and emb is not None else -1.0
        overlap = iou(t.box, box)
        if (compared and similar < OTHER_FACE) or (similar < SAME_FACE and overlap < SAME_PLACE):
            continue  # someone else, or too far from where the face was
        score = max(similar, overlap)
        if score > best_score:
            best, best_score = i, score
    return best


def _decided(visit: _Visit, verdict: Verdict, alert: bool) -> VisitDecision:
    assert visit.best is not None  # a visit is decided only once it has a frame
    visit.decided = verdict
    visit.revision += 1
    visit.strangers = _strangers(visit)
    if alert:
        visit.alerted, visit.alerted_rank = visit.best, visit.best_rank
    held, visit.held = visit.held, []
    return VisitDecision(
        visit.camera,
        visit.event_id,
        verdict,
        len(visit.seqs),
        list(visit.faces),
        visit.best,
        alert,
        visit.revision,
        held,
    )


def _strangers(visit: _Visit) -> int:
    return sum(1 for t in visit.tracks if t.usable and t.label is None)


def _px(box: Box) -> int:
    return min(box[2] - box[0], box[3] - box[1])


def iou(a: Box, b: Box) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
