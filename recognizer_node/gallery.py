"""The enrolled faces, in SQLite (WAL, synchronous=FULL: a committed enrollment survives a crash).

Each enrollment keeps the aligned 112x112 face (PNG, lossless) beside its embedding, so a new model
can re-embed the gallery without the original photos. Labels compare case-insensitively ("obama" and
"Obama" are one person; the first spelling is kept).

People have a label (their id: ASCII, safe in topics and file names) and a display name in any script
(`José`, `李雷`), kept in `names`; a request may name them by either (`resolve`). A new name gets a label
derived from it (`label_for`: José -> Jose, 李雷 -> p-<hash>), made unique (`person`). A label without a
`names` row is shown as it is (every gallery made before names existed).

The answers to recent training requests are kept (`trainings`, the newest REMEMBERED_TRAININGS): a retry
of the same request (its id, and what it asks), after a timeout, is answered again instead of enrolling
the face twice. Another request with the same photo (its face at least SAME_PHOTO_SIMILARITY like an
enrollment of its label) is answered with that enrollment and adds nothing either (`add_once`).

The tables added since the first gallery are created when an older database is opened.

Negatives are faces a household said are *not* a label (a look-alike wrongly named): kept the same way
(embedding, and the aligned face when there is one), they follow their label through renames and
merges and go with it when it is deleted; matching.py says how they count.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homesec.contract import ContractError, check_label, check_name, to_iso, utc_now
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
CREATE TABLE IF NOT EXISTS names (
    label TEXT PRIMARY KEY COLLATE NOCASE,
    name TEXT NOT NULL          -- NFC, as the household wrote it
);
CREATE TABLE IF NOT EXISTS trainings (
    request_key TEXT PRIMARY KEY, -- the request's id and a digest of what it asked (people.training_key)
    enrollment_id INTEGER NOT NULL,
    answer TEXT,                -- the answer (JSON), written just after the enrollment
    created TEXT NOT NULL
);
"""

REMEMBERED_TRAININGS = 1000  # training request ids kept with their answers, the newest first
# A training whose face is at least this like (cosine) an enrollment of its label is the same photo
# again (resent, uploaded twice, re-encoded) and adds nothing. Measured with the shipped models on
# tests/data/faces and demo/ (bench/train_duplicate.py): the same photo re-encoded at JPEG q95..q70, or
# scaled to 0.8 at q70, scores 0.970..0.996 (q50: 0.960..0.972); another photo of the same person
# 0.68..0.81. Two frames of one camera video score 0.953..0.989: near-identical, they count as one too.
SAME_PHOTO_SIMILARITY = 0.93

# Letters NFKD does not decompose into ASCII, spelled as their languages would in ASCII.
_TRANSLITERATION = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D",
     "þ": "th", "Þ": "Th", "œ": "oe", "Œ": "OE", "ı": "i"}
)  # fmt: skip
_NOT_IN_LABEL = re.compile(r"[^A-Za-z0-9 _.\-]+")


def is_label(text: str) -> bool:
    try:
        check_label(text)
    except ContractError:
        return False
    return True


def label_for(name: str) -> str:
    """A label derived from a display name: its ASCII spelling (José -> Jose, Łukasz -> Lukasz), or for a
    script without one a short hash that stays the same for the same name (李雷 -> p-1f3a9c)."""
    name = check_name(name)
    ascii_only = unicodedata.normalize("NFKD", name.translate(_TRANSLITERATION)).encode("ascii", "ignore")
    slug = _NOT_IN_LABEL.sub("-", ascii_only.decode())
    slug = re.sub(r"\.{2,}", ".", re.sub(r"-{2,}", "-", slug)).strip(" _.-")[:64].rstrip(" _.-")
    if slug and is_label(slug):
        return slug
    return "p-" + hashlib.sha256(name.casefold().encode()).hexdigest()[:6]


@dataclass(frozen=True)
class Person:
    label: str  # the id
    name: str  # what is shown


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
        self._names: dict[str, str] | None = None
        self._data_version = data_version(self._db)

    # ------------------------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            with transaction(self._db) as db:
                yield db
            self._forget_cached()

    def _forget_cached(self) -> None:
        self._cache.clear()
        self._names = None

    def _fresh(self) -> None:
        """Drop the caches when another connection (process) committed."""
        version = data_version(self._db)
        if version != self._data_version:
            self._forget_cached()
            self._data_version = version

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
        request_key: str | None = None,
    ) -> int:
        """The new enrollment's id; for a `request_key` that enrolled before (and whose enrollment is
        still there), that enrollment's, and nothing is added (checked in the same transaction, so two copies of a request enroll once)."""
        return self.add_once(label, embedding, model, crop, crop_format, quality, source, request_key)[0]

    def add_once(
        self,
        label: str,
        embedding: np.ndarray,
        model: str,
        crop: bytes,
        crop_format: str = "png",
        quality: float | None = None,
        source: str = "api",
        request_key: str | None = None,
        same_within: float | None = None,
    ) -> tuple[int, bool]:
        """`add`, unless `label` already has an enrollment of `model` at least `same_within` (cosine)
        like `embedding`: the same photo again. Then (that enrollment's id, True), and nothing is added
        but the `request_key`, so a retry of this request finds that enrollment too."""
        label = check_label(label)
        vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
        created = to_iso(utc_now())
        with self._write() as db:
            if request_key is not None and (before := self._training(db, request_key)) is not None:
                return before, False
            same = None if same_within is None else self._same_face(db, label, vector, model, same_within)
            enrollment_id = same
            if enrollment_id is None:
                row = (self._spelling(db, label), model, vector.tobytes(), crop, crop_format, quality, source)
                cur = db.execute(
                    "INSERT INTO enrollments (label, model, embedding, crop, crop_format, quality, source, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row, created),
                )
                enrollment_id = int(cur.lastrowid or 0)
            if request_key is not None:
                self._remember_training(db, request_key, enrollment_id, created)
            return enrollment_id, same is not None

    def _same_face(
        self, db: sqlite3.Connection, label: str, vector: np.ndarray, model: str, within: float
    ) -> int | None:
        """The enrollment of `label` most like `vector`, when it is at least `within` like it."""
        rows = db.execute(
            "SELECT id, embedding FROM enrollments WHERE label = ? AND model = ?", (label, model)
        ).fetchall()
        if not rows:
            return None
        stored = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        norms = np.linalg.norm(stored, axis=1) * max(float(np.linalg.norm(vector)), 1e-12)
        similarity = stored @ vector / np.maximum(norms, 1e-12)
        best = int(np.argmax(similarity))
        return int(rows[best][0]) if similarity[best] >= within else None

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
            db.execute("DELETE FROM names WHERE label = ?", (label,))
            return db.execute("DELETE FROM enrollments WHERE label = ?", (label,)).rowcount

    def rename_label(self, label: str, new_label: str) -> int:
        """Rename (or merge into an existing label); returns the number of enrollments moved. A merge
        keeps the display name of the label merged into."""
        label, new_label = check_label(label), check_label(new_label)
        with self._write() as db:
            same = label.lower() == new_label.lower()
            target = new_label if same else self._spelling(db, new_label)
            db.execute("UPDATE negatives SET label = ? WHERE label = ?", (target, label))
            if same:  # a new spelling: the display name stays
                db.execute("UPDATE names SET label = ? WHERE label = ?", (target, label))
            else:  # the target's name is shown (the caller names a new target: `set_name`)
                db.execute("DELETE FROM names WHERE label = ?", (label,))
            return db.execute("UPDATE enrollments SET label = ? WHERE label = ?", (target, label)).rowcount

    # ------------------------------------------------------------------------------------- names

    def names(self) -> dict[str, str]:
        """Label -> display name, for every enrolled label (its label when it has no other name)."""
        with self._lock:
            self._fresh()
            if self._names is None:
                rows = self._db.execute(
                    "SELECT e.label, n.name FROM (SELECT MIN(label) AS label FROM enrollments GROUP BY label) e"
                    " LEFT JOIN names n ON n.label = e.label COLLATE NOCASE ORDER BY e.label"
                ).fetchall()
                self._names = {str(label): str(name or label) for label, name in rows}
            return dict(self._names)

    def name_of(self, label: str) -> str:
        """How `label` is shown (the label itself when it has no display name, or is not enrolled)."""
        return next((n for lab, n in self.names().items() if lab.lower() == label.lower()), label)

    def resolve(self, given: str) -> str | None:
        """The enrolled label that `given` names, by its label or its display name (any case), or None."""
        text = check_name(given).casefold()
        names = self.names()
        by_label = (label for label in names if label.casefold() == text)
        by_name = (label for label, name in names.items() if name.casefold() == text)
        return next(by_label, None) or next(by_name, None)

    def person(self, given: str, name: str | None = None, *, renaming: str | None = None) -> Person:
        """Who `given` (a label or a display name) is: the enrolled person it names, else a new one whose
        label is `given` when it is a valid label, else derived from it, unlike any other's. `name`, when
        given, is the display name to show from now on. `renaming`: a label whose own spelling is free
        (a person renamed keeps their label when the new name derives to it)."""
        shown = check_name(name) if name is not None else None
        if (found := self.resolve(given)) is not None:
            return Person(found, shown or self.name_of(found))
        shown = shown or check_name(given)
        base = given.strip() if is_label(given) else label_for(given)
        return Person(self._free_label(base, renaming), shown)

    def _free_label(self, base: str, renaming: str | None) -> str:
        taken = {label.lower() for label in self.names()} - {(renaming or "").lower()}
        for n in range(1, 1000):
            suffix = "" if n == 1 else f"-{n}"
            candidate = base[: 64 - len(suffix)].rstrip(" _.-") + suffix
            if candidate.lower() not in taken:
                return candidate
        raise ContractError(f"no free label left for {base!r}")  # a thousand people of one name

    def set_name(self, person: Person) -> None:
        """Show `person.label` as `person.name` from now on."""
        label, name = check_label(person.label), check_name(person.name)
        with self._write() as db:
            db.execute(
                "INSERT INTO names (label, name) VALUES (?, ?) ON CONFLICT(label) DO UPDATE SET name = excluded.name",
                (label, name),
            )

    # ---------------------------------------------------------------------------------- trainings

    def _training(self, db: sqlite3.Connection, request_key: str) -> int | None:
        row = db.execute(
            "SELECT t.enrollment_id FROM trainings t JOIN enrollments e ON e.id = t.enrollment_id"
            " WHERE t.request_key = ?",
            (request_key,),
        ).fetchone()
        return None if row is None else int(row[0])

    def _remember_training(
        self, db: sqlite3.Connection, request_key: str, enrollment_id: int, created: str
    ) -> None:
        db.execute(
            "INSERT OR REPLACE INTO trainings (request_key, enrollment_id, answer, created) VALUES (?, ?, NULL, ?)",
            (request_key, enrollment_id, created),
        )
        db.execute(
            "DELETE FROM trainings WHERE rowid NOT IN (SELECT rowid FROM trainings ORDER BY rowid DESC LIMIT ?)",
            (REMEMBERED_TRAININGS,),
        )

    def remember_answer(self, request_key: str, answer: str) -> None:
        """Keep the answer to the training `request_key` (enrolled by `add`), for a retry of it."""
        with self._write() as db:
            db.execute("UPDATE trainings SET answer = ? WHERE request_key = ?", (answer, request_key))

    def answered(self, request_key: str) -> tuple[str, str] | None:
        """(the answer, the label its enrollment has now) of a training that enrolled before and whose
        enrollment is still there; None for a new request (or one whose enrollment was deleted since:
        training again is what the household wants then)."""
        with self._lock:
            row = self._db.execute(
                "SELECT t.answer, e.label FROM trainings t JOIN enrollments e ON e.id = t.enrollment_id"
                " WHERE t.request_key = ?",
                (request_key,),
            ).fetchone()
        if row is None or row[0] is None:  # no answer kept: `add` finds the enrollment again
            return None
        return str(row[0]), str(row[1])

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

    def delete_negative(self, negative_id: int) -> str | None:
        """Forget a negative ("not X" taken back); the label it was a negative of, None if there is none."""
        with self._write() as db:
            row = db.execute("SELECT label FROM negatives WHERE id = ?", (negative_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM negatives WHERE id = ?", (negative_id,))
            return str(row[0])

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
            self._fresh()
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
