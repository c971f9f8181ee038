"""Questions to the recognizer that change nothing: who is in this photo, what is in the gallery, what
the event archive holds (its events, their snapshots, the unknown visitors).

Like `operations.py`, these take decoded requests and return answers, knowing no transport; the HTTP API
serves them (MQTT has no topic for them yet). A photo that is not an image raises ContractError; asking
the archive when there is none raises ArchiveOff; a missing event, snapshot or visitor is None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from sqlite3 import Connection
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from homesec.contract import Face, Payload
from recognizer_node import archive_browse as browse
from recognizer_node import people
from recognizer_node.annotate import draw_marks, mark_for
from recognizer_node.operations import ARCHIVE_OFF, RecognizerOperations

T = TypeVar("T")


class ArchiveOff(LookupError):
    """The recognizer runs without an event archive (switched off, or it failed to open)."""


class Matching(BaseModel):
    """Whom the gallery knows in `image`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    request_id: str
    image: bytes = Field(repr=False)


class MatchResult(Payload):
    request_id: str
    matched: bool  # some face was named
    label: str | None  # the named face with the highest similarity
    similarity: float | None
    faces: list[Face]  # every face found, named or not, with its box and quality
    width: int
    height: int
    model: str
    timings_ms: dict[str, float]


class EnrollmentInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: int
    label: str
    name: str  # the label's display name (any script)
    quality: float | None
    source: str
    created: str


class LabelInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    name: str  # how the person is shown (any script: `José`); `label` is their id
    enrollments: int
    best: int  # the enrollment of the best quality: its crop is the label's thumbnail


class Crop(BaseModel):
    """An aligned 112x112 face as stored: PNG for enrollments, JPEG for archived faces."""

    model_config = ConfigDict(frozen=True)
    data: bytes = Field(repr=False)
    media_type: str


def match(ops: RecognizerOperations, req: Matching) -> MatchResult:
    """Every face of the photo against the gallery; nothing is archived or enrolled."""
    recognition = ops.recognizer.recognize(req.image, ops.gallery)
    faces = people.named_faces([m.to_contract() for m in recognition.faces], ops.gallery)
    named = [f for f in faces if f.label is not None]
    best = max(named, key=lambda f: f.similarity or 0.0) if named else None
    analysis = recognition.analysis
    return MatchResult(
        request_id=req.request_id,
        matched=best is not None,
        label=best.label if best else None,
        similarity=best.similarity if best else None,
        faces=faces,
        width=analysis.width,
        height=analysis.height,
        model=ops.recognizer.model_name,
        timings_ms=recognition.timings_ms,
    )


def labels(ops: RecognizerOperations) -> list[LabelInfo]:
    """Every label with its number of enrollments and its best one (for a thumbnail)."""
    by_label: dict[str, list[EnrollmentInfo]] = {}
    for e in enrollments(ops):
        by_label.setdefault(e.label.lower(), []).append(e)
    out = []
    for group in by_label.values():
        best = max(group, key=lambda e: (e.quality or 0.0, -e.id))
        first = group[0]
        out.append(LabelInfo(label=first.label, name=first.name, enrollments=len(group), best=best.id))
    return sorted(out, key=lambda i: i.label.lower())


def enrollments(ops: RecognizerOperations, label: str | None = None) -> list[EnrollmentInfo]:
    """The enrollments (of one person, by label or display name: ContractError when it is malformed),
    oldest first."""
    gallery = ops.gallery
    if label is not None and (label := gallery.resolve(label)) is None:
        return []
    names = {known.lower(): name for known, name in gallery.names().items()}
    return [
        EnrollmentInfo(
            id=e.id,
            label=e.label,
            name=names.get(e.label.lower(), e.label),
            quality=e.quality,
            source=e.source,
            created=e.created,
        )
        for e in gallery.enrollments(label)
    ]


def enrollment_crop(ops: RecognizerOperations, enrollment_id: int) -> Crop | None:
    found = ops.gallery.crop(enrollment_id)
    if found is None:
        return None
    data, fmt = found
    return Crop(data=data, media_type=f"image/{fmt}")


# ------------------------------------------------------------------------------------ the archive


def _archive(ops: RecognizerOperations, query: Callable[[Connection], T]) -> T:
    if ops.history is None:
        raise ArchiveOff(ARCHIVE_OFF)
    return ops.history.archive.read(query)


def _directory(ops: RecognizerOperations) -> Path:
    if ops.history is None:
        raise ArchiveOff(ARCHIVE_OFF)
    return ops.history.archive.directory


def events(ops: RecognizerOperations, which: browse.EventFilter) -> browse.EventPage:
    """The events `which` selects; its person may be given by label or display name (`José`), as every
    command takes them (one who was forgotten since is still looked up as given)."""
    if which.label is not None:
        which = dataclasses.replace(which, label=people.label_of(which.label, ops.gallery))
    return _archive(ops, lambda db: browse.events(db, which))


def event(ops: RecognizerOperations, event_id: str) -> browse.EventDetail | None:
    directory = _directory(ops)
    return _archive(ops, lambda db: browse.event(db, directory, event_id))


def snapshot(ops: RecognizerOperations, event_id: str, seq: int, *, annotated: bool = False) -> bytes | None:
    """The archived JPEG as the camera took it, or with its faces boxed as in the alert."""
    directory = _directory(ops)
    path = _archive(ops, lambda db: browse.snapshot_path(db, directory, event_id, seq))
    if path is None:
        return None
    try:
        jpeg = path.read_bytes()
    except FileNotFoundError:  # retention deleted it just now
        return None
    if not annotated:
        return jpeg
    detail = event(ops, event_id)
    shot = next((s for s in detail.snapshots if s.seq == seq), None) if detail else None
    faces = shot.faces if shot else []
    marks = [mark_for(f.label, f.similarity, f.rejected, f.box) for f in faces]
    return draw_marks(jpeg, marks, max_pixels=ops.settings.max_image_pixels)


def visitors(ops: RecognizerOperations, offset: int = 0, limit: int = 50) -> list[browse.VisitorSummary]:
    return _archive(ops, lambda db: browse.visitors(db, offset, limit))


def visitor(ops: RecognizerOperations, visitor_id: int) -> browse.VisitorDetail | None:
    return _archive(ops, lambda db: browse.visitor(db, visitor_id))


def visitor_crop(ops: RecognizerOperations, visitor_id: int, face_id: int | None = None) -> Crop | None:
    data = _archive(ops, lambda db: browse.visitor_crop(db, visitor_id, face_id))
    return None if data is None else Crop(data=data, media_type="image/jpeg")
