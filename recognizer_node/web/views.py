"""What the pages show, made from the same queries the JSON API answers with: visit cards (best photo,
people), a visit's frames with their faces, the people of the gallery, the cameras of the house.

Labels are shown by their display name when the gallery has one (`name` beside the label id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from homesec.contract import Verdict
from recognizer_node import queries
from recognizer_node.archive_browse import ArchivedFaceInfo, ArchivedSnapshot, EventDetail, EventSummary
from recognizer_node.operations import RecognizerOperations

# A visit's verdict, from its frames': someone unknown at the door is what matters most.
VERDICT_ORDER = [Verdict.UNKNOWN, Verdict.KNOWN, Verdict.TOO_SMALL, Verdict.NO_FACE]
VERDICT_TEXT = {
    Verdict.UNKNOWN: "unknown",
    Verdict.KNOWN: "known",
    Verdict.TOO_SMALL: "face too small",
    Verdict.NO_FACE: "no face",
}


@dataclass(frozen=True)
class Person:
    """One person seen in a visit, as a chip: `kind` known, unknown or poor (a face too poor to use)."""

    text: str
    kind: str
    similarity: float | None = None
    href: str | None = None


@dataclass(frozen=True)
class FaceView:
    index: int
    face: ArchivedFaceInfo
    shown: str  # what to call it: a name, "unknown visitor 7", "unknown", or why it was not used
    kind: str
    left: float  # the box, in % of the photo, for the overlay
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class FrameView:
    snapshot: ArchivedSnapshot
    faces: list[FaceView]


@dataclass(frozen=True)
class VisitCard:
    event_id: str
    camera: str
    when: datetime
    frames: int
    verdict: Verdict
    best_seq: int | None  # the frame shown, None when no photo is kept
    people: list[Person] = field(default_factory=list)


class Names:
    """Label id -> display name (the gallery's `name` when it has one, else the label itself)."""

    def __init__(self, ops: RecognizerOperations) -> None:
        self.labels = queries.labels(ops)
        self._by_id = {i.label.lower(): getattr(i, "name", None) or i.label for i in self.labels}

    def __call__(self, label: str) -> str:
        return self._by_id.get(label.lower(), label)


def visit_verdict(verdicts: list[Verdict]) -> Verdict:
    return next((v for v in VERDICT_ORDER if v in verdicts), Verdict.NO_FACE)


def face_kind(face: ArchivedFaceInfo) -> str:
    if face.label is not None:
        return "known"
    return "poor" if face.rejected else "unknown"


def face_text(face: ArchivedFaceInfo, names: Names) -> str:
    if face.label is not None:
        return names(face.label)
    if face.rejected:
        return f"not used: {face.rejected}"
    return f"unknown visitor {face.visitor}" if face.visitor is not None else "unknown"


def people(detail: EventDetail, names: Names) -> list[Person]:
    """Each person of the visit once: the named with their best similarity, then the unknown ones."""
    best: dict[str, float] = {}
    unknown: list[Person] = []
    for shot in detail.snapshots:
        for f in shot.faces:
            if f.label is not None:
                best[f.label] = max(best.get(f.label, -1.0), f.similarity or 0.0)
            elif not f.rejected:
                p = Person(
                    face_text(f, names),
                    "unknown",
                    href=None if f.visitor is None else f"/visits?visitor={f.visitor}",
                )
                if p not in unknown:
                    unknown.append(p)
    named = [
        Person(names(label), "known", similarity, f"/people/{label}")
        for label, similarity in sorted(best.items(), key=lambda kv: -kv[1])
    ]
    unnamed = [p for p in unknown if p.text != "unknown"] or unknown[:1]
    return named + unnamed


def best_seq(detail: EventDetail) -> int | None:
    """The frame that shows the visit best: kept, with the most named faces, then the best face."""
    kept = [s for s in detail.snapshots if s.kept]
    if not kept:
        return None

    def score(s: ArchivedSnapshot) -> tuple[int, int, float]:
        named = sum(f.label is not None for f in s.faces)
        usable = sum(f.rejected is None for f in s.faces)
        return named, usable, max((f.quality or 0.0 for f in s.faces), default=0.0)

    return max(kept, key=score).seq


def visit_card(ops: RecognizerOperations, summary: EventSummary, names: Names) -> VisitCard:
    detail = queries.event(ops, summary.event_id)
    return VisitCard(
        event_id=summary.event_id,
        camera=summary.camera,
        when=summary.last,
        frames=summary.snapshots,
        verdict=visit_verdict(summary.verdicts),
        best_seq=best_seq(detail) if detail else None,
        people=people(detail, names) if detail else [],
    )


def frame_view(shot: ArchivedSnapshot, size: tuple[int, int] | None, names: Names) -> FrameView:
    w, h = size or (1, 1)
    faces = [
        FaceView(
            index=i, face=f, shown=face_text(f, names), kind=face_kind(f),
            left=100 * f.box[0] / w, top=100 * f.box[1] / h,
            width=100 * (f.box[2] - f.box[0]) / w, height=100 * (f.box[3] - f.box[1]) / h,
        )
        for i, f in enumerate(shot.faces)
    ]  # fmt: skip
    return FrameView(snapshot=shot, faces=faces)


def source_text(source: str) -> str:
    """Where an enrollment came from, for people (the gallery keeps `event:<id>/<seq>#<face>`, `http`...)."""
    if source.startswith("event:"):
        return "from a visit"
    if source.startswith("visitor"):
        return "from a named visitor"
    return {"web": "uploaded here", "http": "uploaded (API)", "mqtt": "sent (command line or bot)"}.get(
        source, source
    )


# ------------------------------------------------------------------------------------------ times


def local(ts: datetime) -> datetime:
    return ts.astimezone()  # the home server's time zone: the household's


def when(ts: datetime, now: datetime | None = None) -> str:
    """ "10:42", "yesterday 18:03", "Tue 24 Nov 18:03", "24 Nov 2025 18:03"."""
    t = local(ts)
    today = local(now or datetime.now(UTC)).date()
    clock = t.strftime("%H:%M")
    if t.date() == today:
        return clock
    if t.date() == today - timedelta(days=1):
        return f"yesterday {clock}"
    if (today - t.date()).days < 180:
        return f"{t.strftime('%a')} {t.day} {t.strftime('%b')} {clock}"
    return f"{t.day} {t.strftime('%b %Y')} {clock}"


def day_range(day: str) -> tuple[datetime, datetime]:
    """The local day `YYYY-MM-DD` as [since, until) (ValueError when malformed)."""
    midnight = datetime.strptime(day, "%Y-%m-%d")  # naive: local, with the DST of that date
    return midnight.astimezone(), (midnight + timedelta(days=1)).astimezone()


def hit_face(
    ops: RecognizerOperations, event_id: str, box: tuple[int, int, int, int]
) -> tuple[int | None, ArchivedFaceInfo | None]:
    """The frame and the archived face of a search hit (the hit names its event and the face's box)."""
    detail = queries.event(ops, event_id)
    for shot in detail.snapshots if detail else []:
        for f in shot.faces:
            if f.box == box:
                return (shot.seq if shot.kept else None), f
    return None, None
