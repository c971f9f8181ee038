"""The enrolled faces, in SQLite (WAL, synchronous=FULL: a committed enrollment survives a crash).

Each enrollment keeps the aligned 112x112 face (PNG, lossless) beside its embedding, so a new model
can re-embed the gallery without the original photos. Labels compare case-insensitively ("obama" and
"Obama" are one person; the first spelling is kept).

Negatives are faces a household said are *not* a label (a look-alike wrongly named): kept the same way
(embedding, and the aligned face when there is one), they follow their label through renames and
merges and go with it when it is deleted; matching.py says how they count.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homesec.contract import check_label, to_iso, utc_now
from recognizer_node.db import data_version, open_db, transaction
from recognizer_node.matching import GalleryMatrix

SCHEMA = """
CREATE TABLE IF NOT EXISTS enrollments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL COLLATE NOCASE,
    model TEXT NOT NULL,
    embedding BLOB NOT NULL,
    crop BLOB NOT NULL,
    crop_format TEXT NOT NULL,
    quality REAL,
    source TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS enrollments_label ON enrollments(label);
CREATE TABLE IF NOT EXISTS negatives (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL COLLATE NOCASE,
    model TEXT NOT NULL,
    embedding BLOB NOT NULL,
    crop BLOB,                   -- NULL when the face came without one (it cannot be re-embedded)
    crop_format TEXT,
    source TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS negatives_label ON negatives(label);
"""


@dataclass(frozen=True)
class Enrollment:
    id: int
    label: str
    model: str
    quality: float | None
    source: str
    created: str


@dataclass(frozen=True)
class Negative:
    id: int
    label: str
    model: str
    has_crop: bool  # can be re-embedded by another model
    source: str  # e.g. `event:<event_id>/<seq>#<face>`, `photo`
    created: str


class Gallery:
    """Thread-safe; one connection. The embedding matrix is cached until the gallery changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = open_db(path, SCHEMA, synchronous="FULL")
        self._cache: dict[str, GalleryMatrix] = {}
        self._data_version = data_version(self._db)

    # ------------------------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            with transaction(self._db) as db:
                yield db
            self._cache.clear()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spelling(self, db: sqlite3.Connection, label: str) -> str:
        row = db.execute("SELECT label FROM enrollments WHERE label = ? LIMIT 1", (label,)).fetchone()
        return str(row[0]) if row else label

    # ---------------------------------------------------------------------------------- operations

    def add(
        self,
        label: str,
        embedding: np.ndarray,
        model: str,
        crop: bytes,
        crop_format: str = "png",
        quality: float | None = None,
        source: str = "api",
    ) -> int:
        label = check_label(label)
        blob = np.asarray(embedding, dtype=np.float32).reshape(-1).tobytes()
        created = to_iso(utc_now())
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO enrollments (label, model, embedding, crop, crop_format, quality, source, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self._spelling(db, label), model, blob, crop, crop_format, quality, source, created),
            )
            return int(cur.lastrowid or 0)

    def labels(self) -> dict[str, int]:
        """Label -> number of enrollments, sorted by label."""
        with self._lock:
            rows = self._db.execute(
                "SELECT MIN(label), COUNT(*) FROM enrollments GROUP BY label ORDER BY label"
            ).fetchall()
        return {str(label): int(n) for label, n in rows}

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM enrollments").fetchone()[0])

    def enrollments(self, label: str | None = None) -> list[Enrollment]:
        query = "SELECT id, label, model, quality, source, created FROM enrollments"
        args: tuple[str, ...] = ()
        if label is not None:
            query, args = query + " WHERE label = ?", (check_label(label),)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [Enrollment(int(r[0]), str(r[1]), str(r[2]), r[3], str(r[4]), str(r[5])) for r in rows]

    def crop(self, enrollment_id: int) -> tuple[bytes, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT crop, crop_format FROM enrollments WHERE id = ?", (enrollment_id,)
            ).fetchone()
        return (bytes(row[0]), str(row[1])) if row else None

    def delete_label(self, label: str) -> int:
        label = check_label(label)
        with self._write() as db:
            db.execute("DELETE FROM negatives WHERE label = ?", (label,))
            return db.execute("DELETE FROM enrollments WHERE label = ?", (label,)).rowcount

    def rename_label(self, label: str, new_label: str) -> int:
        """Rename (or merge into an existing label); returns the number of enrollments moved."""
        label, new_label = check_label(label), check_label(new_label)
        with self._write() as db:
            target = new_label if label.lower() == new_label.lower() else self._spelling(db, new_label)
            db.execute("UPDATE negatives SET label = ? WHERE label = ?", (target, label))
            return db.execute("UPDATE enrollments SET label = ? WHERE label = ?", (target, label)).rowcount

    # ---------------------------------------------------------------------------------- negatives

    def add_negative(
        self,
        label: str,
        embedding: np.ndarray,
        model: str,
        crop: bytes | None = None,
        crop_format: str | None = None,
        source: str = "api",
    ) -> int:
        """Keep a face that is not `label`; the label must be enrolled (spelled as it was enrolled)."""
        label = check_label(label)
        blob = np.asarray(embedding, dtype=np.float32).reshape(-1).tobytes()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO negatives (label, model, embedding, crop, crop_format, source, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self._spelling(db, label), model, blob, crop, crop_format, source, to_iso(utc_now())),
            )
            return int(cur.lastrowid or 0)

    def negative_faces(self, label: str | None = None) -> list[Negative]:
        query = "SELECT id, label, model, crop IS NOT NULL, source, created FROM negatives"
        args: tuple[str, ...] = ()
        if label is not None:
            query, args = query + " WHERE label = ?", (check_label(label),)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [Negative(int(r[0]), str(r[1]), str(r[2]), bool(r[3]), str(r[4]), str(r[5])) for r in rows]

    def negatives(self) -> dict[str, int]:
        """Label -> number of negatives, sorted by label."""
        with self._lock:
            rows = self._db.execute(
                "SELECT MIN(label), COUNT(*) FROM negatives GROUP BY label ORDER BY label"
            ).fetchall()
        return {str(label): int(n) for label, n in rows}

    def delete_enrollment(self, enrollment_id: int) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM enrollments WHERE id = ?", (enrollment_id,)).rowcount > 0

    def stale(self, model: str) -> int:
        """Enrollments (and negatives with a face) embedded by another model: not matched until
        re-embedded."""
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT (SELECT COUNT(*) FROM enrollments WHERE model != ?)"
                    " + (SELECT COUNT(*) FROM negatives WHERE model != ? AND crop IS NOT NULL)",
                    (model, model),
                ).fetchone()[0]
            )

    def reembed(self, model: str, embed: Callable[[bytes, str], np.ndarray]) -> int:
        """Recompute the embeddings made by other models from the stored crops, in one transaction."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, crop, crop_format FROM enrollments WHERE model != ?", (model,)
            ).fetchall()
            negative_rows = self._db.execute(
                "SELECT id, crop, crop_format FROM negatives WHERE model != ? AND crop IS NOT NULL", (model,)
            ).fetchall()

        def updates(found: list[tuple[int, bytes, str]]) -> list[tuple[bytes, str, int]]:
            return [
                (np.asarray(embed(bytes(c), str(f)), np.float32).tobytes(), model, int(i))
                for i, c, f in found
            ]

        enrollments, negatives = updates(rows), updates(negative_rows)
        with self._write() as db:
            db.executemany("UPDATE enrollments SET embedding = ?, model = ? WHERE id = ?", enrollments)
            db.executemany("UPDATE negatives SET embedding = ?, model = ? WHERE id = ?", negatives)
        return len(enrollments) + len(negatives)

    def matrix(self, model: str) -> GalleryMatrix:
        """All embeddings of `model`, grouped by label; cached until the gallery changes."""
        with self._lock:
            version = data_version(self._db)
            if version != self._data_version:  # another connection (process) committed
                self._cache.clear()
                self._data_version = version
            cached = self._cache.get(model)
            if cached is not None:
                return cached
            rows = self._db.execute(
                "SELECT id, label, embedding FROM enrollments WHERE model = ? ORDER BY id", (model,)
            ).fetchall()
            if rows:
                emb = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
                # group case-insensitively under one spelling (the first enrolled)
                first: dict[str, str] = {}
                labels = [first.setdefault(str(r[1]).lower(), str(r[1])) for r in rows]
                negative_rows = self._db.execute(
                    "SELECT label, embedding FROM negatives WHERE model = ? ORDER BY id", (model,)
                ).fetchall()
                negatives = [np.frombuffer(r[1], dtype=np.float32) for r in negative_rows]
                result = GalleryMatrix.build(
                    emb,
                    labels,
                    [int(r[0]) for r in rows],
                    np.stack(negatives) if negatives else None,
                    [first.get(str(r[0]).lower(), str(r[0])) for r in negative_rows],
                )
            else:
                result = GalleryMatrix.empty()
            self._cache[model] = result
            return result
