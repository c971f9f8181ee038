"""Read-only queries over the event archive's tables (archive.py): events with their snapshots and
faces, and the visitors. Each function takes the archive's connection (`Archive.read` hands it over
under the archive's lock) and returns answer models that any adapter can serve as they are.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from homesec.contract import Timestamp, Verdict

Box = tuple[int, int, int, int]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventSummary(_Answer):
    event_id: str
    camera: str
    first: Timestamp  # the first and last snapshot (of those the filter kept)
    last: Timestamp
    snapshots: int
    verdicts: list[Verdict]  # of its snapshots, each once
    labels: list[str]  # the people named in it
    visitors: list[int]  # the unknown visitors seen in it


class EventPage(_Answer):
    events: list[EventSummary]  # newest first
    total: int  # events that match the filter
    offset: int
    next_offset: int | None  # None: this is the last page


class ArchivedFaceInfo(_Answer):
    box: Box
    label: str | None
    similarity: float | None
    quality: float | None
    rejected: str | None
    visitor: int | None


class ArchivedSnapshot(_Answer):
    seq: int
    ts: Timestamp
    verdict: Verdict
    kept: bool  # its JPEG is still on disk
    faces: list[ArchivedFaceInfo]


class EventDetail(_Answer):
    event_id: str
    camera: str
    snapshots: list[ArchivedSnapshot]


class VisitorSummary(_Answer):
    visitor: int
    label: str | None  # set once the visitor was named
    faces: int
    events: int
    first_seen: Timestamp
    last_seen: Timestamp


class VisitorFace(_Answer):
    face: int  # its crop: /api/visitors/{visitor}/faces/{face}/crop
    event_id: str
    seq: int
    ts: Timestamp
    quality: float | None
    box: Box


class VisitorDetail(VisitorSummary):
    recent: list[VisitorFace]  # its faces, newest first (at most VISITOR_FACES)


VISITOR_FACES = 50


def _utc(epoch: object) -> datetime:
    return datetime.fromtimestamp(float(epoch), UTC)  # type: ignore[arg-type]  # a REAL column


@dataclass(frozen=True)
class EventFilter:
    camera: str | None = None
    verdict: Verdict | None = None  # events with a snapshot of this verdict
    label: str | None = None  # events where this person was named (case-insensitive)
    visitor: int | None = None
    since: datetime | None = None  # snapshots taken at or after
    until: datetime | None = None  # snapshots taken before
    offset: int = 0
    limit: int = 50


def events(db: sqlite3.Connection, f: EventFilter) -> EventPage:
    where, args = ["1"], []
    for clause, value in (
        ("e.camera = ?", f.camera),
        ("s.ts >= ?", f.since.timestamp() if f.since else None),
        ("s.ts < ?", f.until.timestamp() if f.until else None),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    having, having_args = ["1"], []
    for clause, value in (
        ("SUM(s.verdict = ?) > 0", f.verdict.value if f.verdict else None),
        ("EXISTS (SELECT 1 FROM faces x WHERE x.event = e.id AND x.label = ? COLLATE NOCASE)", f.label),
        ("EXISTS (SELECT 1 FROM faces x WHERE x.event = e.id AND x.visitor = ?)", f.visitor),
    ):
        if value is not None:
            having.append(clause)
            having_args.append(value)
    grouped = (
        "SELECT e.id, e.event_id, e.camera, MIN(s.ts), MAX(s.ts), COUNT(*), GROUP_CONCAT(DISTINCT s.verdict) "
        f"FROM events e JOIN snapshots s ON s.event = e.id WHERE {' AND '.join(where)} "
        f"GROUP BY e.id HAVING {' AND '.join(having)}"
    )
    params = [*args, *having_args]
    total = int(db.execute(f"SELECT COUNT(*) FROM ({grouped})", params).fetchone()[0])
    rows = db.execute(
        f"{grouped} ORDER BY MAX(s.ts) DESC, e.id DESC LIMIT ? OFFSET ?", [*params, f.limit, f.offset]
    ).fetchall()
    people = _people(db, [int(r[0]) for r in rows])
    page = [
        EventSummary(
            event_id=str(r[1]), camera=str(r[2]), first=_utc(r[3]),
            last=_utc(r[4]), snapshots=int(r[5]),
            verdicts=sorted(Verdict(v) for v in str(r[6]).split(",")),
            labels=people.get(int(r[0]), ([], []))[0], visitors=people.get(int(r[0]), ([], []))[1],
        )
        for r in rows
    ]  # fmt: skip
    end = f.offset + len(page)
    return EventPage(events=page, total=total, offset=f.offset, next_offset=end if end < total else None)


def _people(db: sqlite3.Connection, event_ids: list[int]) -> dict[int, tuple[list[str], list[int]]]:
    """Event row id -> (labels named in it, visitor ids seen in it)."""
    if not event_ids:
        return {}
    marks = ",".join("?" * len(event_ids))
    rows = db.execute(
        f"SELECT DISTINCT event, label, visitor FROM faces WHERE event IN ({marks}) "
        "AND (label IS NOT NULL OR visitor IS NOT NULL)",
        event_ids,
    ).fetchall()
    out: dict[int, tuple[list[str], list[int]]] = {}
    for event, label, visitor in rows:
        labels, visitors = out.setdefault(int(event), ([], []))
        if label is not None and label not in labels:
            labels.append(str(label))
        if visitor is not None and visitor not in visitors:
            visitors.append(int(visitor))
    return {e: (sorted(ls), sorted(vs)) for e, (ls, vs) in out.items()}


def event(db: sqlite3.Connection, directory: Path, event_id: str) -> EventDetail | None:
    head = db.execute("SELECT id, camera FROM events WHERE event_id = ?", (event_id,)).fetchone()
    if head is None:
        return None
    snaps = db.execute(
        "SELECT id, seq, ts, verdict, path FROM snapshots WHERE event = ? ORDER BY seq", (head[0],)
    ).fetchall()
    out = []
    for snap, seq, ts, verdict, path in snaps:
        faces = db.execute(
            "SELECT x1, y1, x2, y2, label, similarity, quality, rejected, visitor FROM faces "
            "WHERE snapshot = ? ORDER BY id",
            (snap,),
        ).fetchall()
        out.append(
            ArchivedSnapshot(
                seq=int(seq), ts=_utc(ts), verdict=Verdict(verdict),
                kept=path is not None and (directory / path).exists(),
                faces=[_face(r) for r in faces],
            )
        )  # fmt: skip
    return EventDetail(event_id=event_id, camera=str(head[1]), snapshots=out)


def _face(r: tuple[object, ...]) -> ArchivedFaceInfo:
    x1, y1, x2, y2, label, similarity, quality, rejected, visitor = r
    return ArchivedFaceInfo.model_validate(
        {"box": (x1, y1, x2, y2), "label": label, "similarity": similarity, "quality": quality,
         "rejected": rejected, "visitor": visitor}
    )  # fmt: skip


def snapshot_path(db: sqlite3.Connection, directory: Path, event_id: str, seq: int) -> Path | None:
    """The snapshot's JPEG, when it is archived and still on disk."""
    row = db.execute(
        "SELECT s.path FROM snapshots s JOIN events e ON e.id = s.event WHERE e.event_id = ? AND s.seq = ?",
        (event_id, seq),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    path = directory / str(row[0])
    return path if path.exists() else None


def visitors(db: sqlite3.Connection, offset: int = 0, limit: int = 50) -> list[VisitorSummary]:
    """The visitors, the most recently seen first."""
    rows = db.execute(
        f"{_VISITOR} GROUP BY v.id ORDER BY v.last_seen DESC, v.id DESC LIMIT ? OFFSET ?", (limit, offset)
    ).fetchall()
    return [_visitor(r) for r in rows]


_VISITOR = (
    "SELECT v.id, v.label, COUNT(f.id), COUNT(DISTINCT f.event), v.created, v.last_seen "
    "FROM visitors v LEFT JOIN faces f ON f.visitor = v.id"
)


def _visitor(r: tuple[object, ...]) -> VisitorSummary:
    vid, label, faces, n_events, created, last_seen = r
    return VisitorSummary.model_validate(
        {"visitor": vid, "label": label, "faces": faces, "events": n_events,
         "first_seen": _utc(created),
         "last_seen": _utc(last_seen)}
    )  # fmt: skip


def visitor(db: sqlite3.Connection, visitor_id: int) -> VisitorDetail | None:
    row = db.execute(f"{_VISITOR} WHERE v.id = ? GROUP BY v.id", (visitor_id,)).fetchone()
    if row is None:
        return None
    faces = db.execute(
        "SELECT f.id, e.event_id, s.seq, s.ts, f.quality, f.x1, f.y1, f.x2, f.y2 FROM faces f "
        "JOIN snapshots s ON s.id = f.snapshot JOIN events e ON e.id = f.event "
        "WHERE f.visitor = ? ORDER BY s.ts DESC, f.id DESC LIMIT ?",
        (visitor_id, VISITOR_FACES),
    ).fetchall()
    recent = [
        VisitorFace(
            face=int(r[0]), event_id=str(r[1]), seq=int(r[2]), ts=_utc(r[3]),
            quality=r[4], box=(int(r[5]), int(r[6]), int(r[7]), int(r[8])),
        )
        for r in faces
    ]  # fmt: skip
    return VisitorDetail(**_visitor(row).model_dump(), recent=recent)


def visitor_crop(db: sqlite3.Connection, visitor_id: int, face_id: int | None = None) -> bytes | None:
    """The aligned face JPEG of one of the visitor's faces, or its best one."""
    if face_id is None:
        row = db.execute(
            "SELECT crop FROM faces WHERE visitor = ? AND crop IS NOT NULL ORDER BY quality DESC, id LIMIT 1",
            (visitor_id,),
        ).fetchone()
    else:
        row = db.execute(
            "SELECT crop FROM faces WHERE visitor = ? AND id = ? AND crop IS NOT NULL", (visitor_id, face_id)
        ).fetchone()
    return None if row is None else bytes(row[0])
