"""The event archive: every processed snapshot, its faces and their embeddings, and the JPEG on disk.

Layout (in `recognizer.archive.dir`, default `<data_dir>/archive/`):
- `archive.sqlite3` (WAL): events (event id, camera), snapshots (seq, capture time, verdict, JPEG path,
  bytes), faces (box, label, similarity, quality, embedding, visitor id, aligned crop for visitors),
  visitors (see visitors.py);
- `YYYY-MM-DD/<event_id>-<seq>.jpg` (UTC date of capture), written atomically.

Retention deletes the oldest snapshots first: by age, and by the disk budget (the JPEGs plus an estimate
of each face row); it runs every `prune_every` inserts, and at once when over budget (the running total
is kept in memory, so the check is free). Freed SQLite pages are reused, so the file stops growing.

Exact search: all embeddings of the current model are kept in one float32 matrix, loaded on the first
search and appended to on insert; a search is one matrix-vector product (about 5 ms for 100k faces).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b
from pathlib import Path
from typing import TypeVar

import numpy as np

from homesec.contract import FILE_SAFE_ID_RE, to_iso
from homesec.files import write_atomic
from recognizer_node import visitors as vis
from recognizer_node.db import data_version, open_db, transaction
from recognizer_node.embeddings import EmbeddingMatrix

log = logging.getLogger(__name__)

DB_NAME = "archive.sqlite3"
FACE_ROW_BYTES = 200  # rough per-face overhead of the row (besides embedding and crop), for the budget
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    camera TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event INTEGER NOT NULL REFERENCES events(id),
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,            -- capture time, epoch seconds
    verdict TEXT NOT NULL,
    path TEXT,                   -- JPEG, relative to the archive directory
    bytes INTEGER NOT NULL,      -- counted against the disk budget
    UNIQUE (event, seq)
);
CREATE INDEX IF NOT EXISTS snapshots_ts ON snapshots(ts);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot INTEGER NOT NULL REFERENCES snapshots(id),
    event INTEGER NOT NULL,
    x1 INTEGER NOT NULL, y1 INTEGER NOT NULL, x2 INTEGER NOT NULL, y2 INTEGER NOT NULL,
    label TEXT,
    similarity REAL,
    quality REAL,
    rejected TEXT,
    model TEXT,
    embedding BLOB,              -- float32, unit length; NULL for faces that were not embedded
    crop BLOB,                   -- aligned 112x112 JPEG, kept for visitors (naming enrolls it)
    visitor INTEGER
);
CREATE INDEX IF NOT EXISTS faces_snapshot ON faces(snapshot);
CREATE INDEX IF NOT EXISTS faces_visitor ON faces(visitor);
-- the events of one person, and the people of a page of events (GET /api/events?label=, the web page)
CREATE INDEX IF NOT EXISTS faces_event ON faces(event);
"""

Box = tuple[int, int, int, int]
T = TypeVar("T")


@dataclass(frozen=True)
class ArchivedFace:
    box: Box
    label: str | None
    similarity: float | None
    quality: float | None = None
    rejected: str | None = None
    embedding: np.ndarray | None = None
    crop: bytes | None = None  # aligned face (JPEG); only needed for visitor candidates
    visitor_candidate: bool = False  # an unknown face that should get a visitor id


@dataclass(frozen=True)
class SnapshotRecord:
    event_id: str
    seq: int
    camera: str
    ts: float  # capture time, epoch seconds
    verdict: str
    faces: Sequence[ArchivedFace]
    jpeg: bytes | None = None


@dataclass(frozen=True)
class ArchiveHit:
    event_id: str
    camera: str
    seq: int
    ts: float
    similarity: float
    box: Box
    snapshot: Path | None  # absolute; None when not kept (or already deleted)
    visitor: int | None

    @property
    def ts_iso(self) -> str:
        return to_iso(self.ts)


def file_stem(event_id: str, seq: int) -> str:
    """`<event_id>-<seq>`; an event id unfit for a file name is replaced by its hash."""
    safe = (
        event_id
        if FILE_SAFE_ID_RE.match(event_id)
        else blake2b(event_id.encode(), digest_size=12).hexdigest()
    )
    return f"{safe}-{seq}"


class Archive:
    """Thread-safe; one connection. Opened by the recognizer (writer) and the CLI (reader)."""

    def __init__(
        self,
        directory: Path,
        model: str,
        *,
        max_age_s: float = 30 * 86400,
        max_bytes: int = 2_000_000_000,
        prune_every: int = 100,
        visitor_threshold: float | None = 0.45,
    ) -> None:
        self.directory = directory
        self.model = model
        self.max_age_s, self.max_bytes, self.prune_every = max_age_s, max_bytes, prune_every
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # WAL + NORMAL: consistent after a crash
        self._db = open_db(directory / DB_NAME, SCHEMA + vis.SCHEMA, synchronous="NORMAL")
        self.visitors = (
            vis.VisitorClusters(model, visitor_threshold) if visitor_threshold is not None else None
        )
        if self.visitors is not None:
            self.visitors.load(self._db)
        self._matrix: EmbeddingMatrix | None = None
        self._data_version = data_version(self._db)
        self._bytes = int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM snapshots").fetchone()[0])
        self._inserts = 0

    # ------------------------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with transaction(self._db) as db:
                    yield db
            except BaseException:
                if self.visitors is not None:
                    self.visitors.load(self._db)  # drop centroid changes of the rolled-back snapshot
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only `query` (archive_browse.py) on the archive's connection, under its lock."""
        with self._lock:
            return query(self._db)

    def count(self) -> tuple[int, int]:
        """(snapshots, faces) archived."""
        with self._lock:
            s = self._db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
            f = self._db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        return int(s), int(f)

    # -------------------------------------------------------------------------------------- insert

    def visitors_of(self, event_id: str, seq: int) -> list[int | None] | None:
        """Visitor ids of an archived snapshot's faces (in order), or None if it is not archived."""
        with self._lock:
            row = self._db.execute(
                "SELECT s.id FROM snapshots s JOIN events e ON e.id = s.event WHERE e.event_id = ? AND s.seq = ?",
                (event_id, seq),
            ).fetchone()
            if row is None:
                return None
            rows = self._db.execute("SELECT visitor FROM faces WHERE snapshot = ? ORDER BY id", (row[0],))
            return [None if v is None else int(v) for (v,) in rows]

    def add(self, rec: SnapshotRecord) -> list[int | None]:
        """Archive one snapshot; returns the visitor id of each face (None for the others).

        A snapshot already archived (a redelivery) is not added again: its stored visitor ids come back.
        """
        with self._lock:
            known = self.visitors_of(rec.event_id, rec.seq)
            if known is not None:
                return known if len(known) == len(rec.faces) else [None] * len(rec.faces)
            path = self._save_jpeg(rec) if rec.jpeg is not None else None
            size = (len(rec.jpeg) if path is not None and rec.jpeg else 0) + sum(
                _face_bytes(f) for f in rec.faces
            )
            try:
                with self._write() as db:
                    visitor_ids, face_ids, event = self._insert(db, rec, path, size)
            except BaseException:
                if path is not None:
                    (self.directory / path).unlink(missing_ok=True)
                raise
            self._bytes += size
            self._inserts += 1
            self._append(rec, face_ids, event)
            if self._inserts % self.prune_every == 0 or self._bytes > self.max_bytes:
                self.prune()
            return visitor_ids

    def _save_jpeg(self, rec: SnapshotRecord) -> str:
        day = datetime.fromtimestamp(rec.ts, UTC).strftime("%Y-%m-%d")
        (self.directory / day).mkdir(exist_ok=True)
        rel = f"{day}/{file_stem(rec.event_id, rec.seq)}.jpg"
        write_atomic(self.directory / rel, rec.jpeg or b"")
        return rel

    def _insert(
        self, db: sqlite3.Connection, rec: SnapshotRecord, path: str | None, size: int
    ) -> tuple[list[int | None], list[int], int]:
        db.execute(
            "INSERT OR IGNORE INTO events (event_id, camera) VALUES (?, ?)", (rec.event_id, rec.camera)
        )
        event = int(db.execute("SELECT id FROM events WHERE event_id = ?", (rec.event_id,)).fetchone()[0])
        snap = int(
            db.execute(
                "INSERT INTO snapshots (event, seq, ts, verdict, path, bytes) VALUES (?, ?, ?, ?, ?, ?)",
                (event, rec.seq, rec.ts, rec.verdict, path, size),
            ).lastrowid
            or 0
        )
        visitor_ids: list[int | None] = [None] * len(rec.faces)
        candidates = [i for i, f in enumerate(rec.faces) if f.visitor_candidate and f.embedding is not None]
        if self.visitors is not None and candidates:
            embs = np.stack([np.asarray(rec.faces[i].embedding, np.float32) for i in candidates])
            for i, vid in zip(candidates, self.visitors.assign(db, embs, rec.ts), strict=True):
                visitor_ids[i] = vid
        face_ids = []
        for f, v in zip(rec.faces, visitor_ids, strict=True):
            emb = None if f.embedding is None else np.asarray(f.embedding, np.float32).tobytes()
            cur = db.execute(
                "INSERT INTO faces (snapshot, event, x1, y1, x2, y2, label, similarity, quality, rejected,"
                " model, embedding, crop, visitor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (snap, event, *f.box, f.label, f.similarity, f.quality, f.rejected,
                 self.model if emb else None, emb, f.crop if v is not None else None, v),
            )  # fmt: skip
            face_ids.append(int(cur.lastrowid or 0))
        return visitor_ids, face_ids, event

    def _append(self, rec: SnapshotRecord, face_ids: list[int], event: int) -> None:
        if self._matrix is None:
            return
        rows = [
            (fid, f.embedding) for fid, f in zip(face_ids, rec.faces, strict=True) if f.embedding is not None
        ]
        if rows:
            self._matrix.append(np.stack([e for _, e in rows]), [fid for fid, _ in rows], [event] * len(rows))

    # ----------------------------------------------------------------------------------- retention

    def prune(self, now: float | None = None) -> int:
        """Delete snapshots older than max_age, then the oldest until under 90% of the budget."""
        now = time.time() if now is None else now
        with self._lock:
            victims = self._db.execute(
                "SELECT id, path, bytes FROM snapshots WHERE ts < ? ORDER BY ts, id", (now - self.max_age_s,)
            ).fetchall()
            excess = self._bytes - sum(int(v[2]) for v in victims) - int(0.9 * self.max_bytes)
            if self._bytes > self.max_bytes and excess > 0:
                seen = {int(v[0]) for v in victims}
                cur = self._db.execute("SELECT id, path, bytes FROM snapshots ORDER BY ts, id")
                while excess > 0 and (rows := cur.fetchmany(256)):
                    for row in rows:
                        if excess > 0 and int(row[0]) not in seen:
                            victims.append(row)
                            excess -= int(row[2])
                cur.close()
            if victims:
                self._delete(victims)
            return len(victims)

    def _delete(self, victims: list[tuple[int, str | None, int]]) -> None:
        ids = [int(v[0]) for v in victims]
        with self._write() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")
            db.execute("DELETE FROM doomed")
            db.executemany("INSERT INTO doomed (id) VALUES (?)", [(i,) for i in ids])
            face_ids = [int(r[0]) for r in db.execute("SELECT id FROM faces WHERE snapshot IN doomed")]
            db.execute("DELETE FROM faces WHERE snapshot IN doomed")
            db.execute("DELETE FROM snapshots WHERE id IN doomed")
            db.execute("DELETE FROM events WHERE id NOT IN (SELECT event FROM snapshots)")
            if self.visitors is not None:
                self.visitors.drop_empty(db)
        if self._matrix is not None:
            self._matrix.remove(face_ids)
        self._bytes -= sum(int(v[2]) for v in victims)
        for _, path, _ in victims:
            if path:
                (self.directory / path).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    (self.directory / path).parent.rmdir()  # only succeeds once the day is empty
        log.info("archive: deleted %d old snapshots (%d faces)", len(ids), len(face_ids))

    # -------------------------------------------------------------------------------------- search

    def matrix(self) -> EmbeddingMatrix:
        """The in-memory embeddings of this model (loaded once; reloaded if another process wrote)."""
        with self._lock:
            version = data_version(self._db)
            if self._matrix is None or version != self._data_version:
                self._data_version = version
                self._matrix = self._load_matrix()
            return self._matrix

    def _load_matrix(self) -> EmbeddingMatrix:
        """Read in chunks straight into a preallocated matrix: peak memory stays near its final size."""
        where = "FROM faces WHERE model = ? AND embedding IS NOT NULL"
        n, dim = self._db.execute(
            f"SELECT COUNT(*), MAX(LENGTH(embedding)) / 4 {where}", (self.model,)
        ).fetchone()
        m = EmbeddingMatrix(int(dim or 128), capacity=max(1024, int(n)))
        cur = self._db.execute(f"SELECT id, event, embedding {where} ORDER BY id", (self.model,))
        while rows := cur.fetchmany(4096):
            emb = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), m.dim)
            m.append(emb, [int(r[0]) for r in rows], [int(r[1]) for r in rows])
        return m

    def search(self, query: np.ndarray, threshold: float, top: int | None = None) -> list[ArchiveHit]:
        """Every archived event with a face at least `threshold` similar: its best face, best first."""
        with self._lock:
            best = self.matrix().best_per_event(query, threshold, top)
            return [self._hit(fid, sim) for fid, sim in best]

    def _hit(self, face_id: int, similarity: float) -> ArchiveHit:
        r = self._db.execute(
            "SELECT e.event_id, e.camera, s.seq, s.ts, f.x1, f.y1, f.x2, f.y2, s.path, f.visitor "
            "FROM faces f JOIN snapshots s ON s.id = f.snapshot JOIN events e ON e.id = f.event WHERE f.id = ?",
            (face_id,),
        ).fetchone()
        snapshot = self.directory / r[8] if r[8] else None
        return ArchiveHit(
            str(r[0]), str(r[1]), int(r[2]), float(r[3]), round(similarity, 4),
            (int(r[4]), int(r[5]), int(r[6]), int(r[7])),
            snapshot if snapshot is not None and snapshot.exists() else None,
            None if r[9] is None else int(r[9]),
        )  # fmt: skip

    # ------------------------------------------------------------------------------------ visitors

    def sightings(self, visitor: int, since: float) -> int:
        with self._lock:
            return vis.sightings(self._db, visitor, since)

    def visitor_faces(
        self, visitor: int, limit: int = 20
    ) -> list[tuple[np.ndarray | None, str | None, bytes, float | None]]:
        """(embedding, model, aligned crop JPEG, quality) of a visitor's faces, best quality first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT embedding, model, crop, quality FROM faces WHERE visitor = ? AND crop IS NOT NULL "
                "ORDER BY quality DESC, id LIMIT ?",
                (visitor, limit),
            ).fetchall()
        return [(None if e is None else np.frombuffer(e, np.float32), m, bytes(c), q) for e, m, c, q in rows]

    def name_visitor(self, visitor: int, label: str) -> bool:
        with self._write() as db:
            return vis.set_label(db, visitor, label)

    def dismiss_visitor(self, visitor: int) -> bool:
        with self._write() as db:
            return self.visitors.dismiss(db, visitor) if self.visitors else vis.dismiss(db, visitor)


def _face_bytes(f: ArchivedFace) -> int:
    emb = 0 if f.embedding is None else 4 * int(np.asarray(f.embedding).size)
    crop = len(f.crop) if f.crop is not None and f.visitor_candidate else 0
    return FACE_ROW_BYTES + emb + crop
