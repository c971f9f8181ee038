"""Unknown visitors: recurring unknown faces clustered online into stable, small integer ids.

Online "leader" clustering: a new unknown face joins the visitor whose centroid (the normalised sum of
its faces' unit embeddings) is the most similar, when at least `threshold`; otherwise it founds a new
visitor. Two faces of one snapshot never join the same visitor (two people side by side are two people).
Ids come from SQLite AUTOINCREMENT in the archive database, so they are never reused, even after a
visitor's faces have all aged out. The threshold's calibration is in docs/search.md.

`VisitorClusters` keeps the centroids in memory (a few hundred rows at most) and writes through the
connection it is handed, inside the archive's transaction, so faces and visitors commit together.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from recognizer_node.embeddings import unit

SCHEMA = """
CREATE TABLE IF NOT EXISTS visitors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    total BLOB NOT NULL,       -- float32 sum of the member faces' unit embeddings
    faces INTEGER NOT NULL,
    label TEXT,                -- set when the visitor was named (enrolled)
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);
"""


def assign(centroids: np.ndarray, embeddings: np.ndarray, threshold: float) -> list[int | None]:
    """For each embedding, the centroid row it joins (None: a new visitor).

    Greedy on the global similarity order, so the best-matching pairs are settled first, and each
    centroid takes at most one face of the batch (one snapshot).
    """
    n_faces = len(embeddings)
    out: list[int | None] = [None] * n_faces
    if n_faces == 0 or len(centroids) == 0:
        return out
    sims = np.asarray(embeddings, np.float32) @ np.asarray(centroids, np.float32).T  # (F, V)
    taken: set[int] = set()
    for flat in np.argsort(-sims, axis=None, kind="stable"):
        f, v = divmod(int(flat), sims.shape[1])
        if sims[f, v] < threshold:
            break
        if out[f] is None and v not in taken:
            out[f] = v
            taken.add(v)
    return out


class VisitorClusters:
    """The visitors of one embedding model; every write goes through the caller's transaction."""

    def __init__(self, model: str, threshold: float, dim: int = 128) -> None:
        self.model = model
        self.threshold = threshold
        self.dim = dim
        self.ids = np.zeros(0, np.int64)
        self.totals = np.zeros((0, dim), np.float32)

    def load(self, db: sqlite3.Connection) -> None:
        rows = db.execute(
            "SELECT id, total FROM visitors WHERE model = ? ORDER BY id", (self.model,)
        ).fetchall()
        self.ids = np.array([int(r[0]) for r in rows], np.int64)
        self.totals = (
            np.stack([np.frombuffer(r[1], np.float32) for r in rows])
            if rows
            else np.zeros((0, self.dim), np.float32)
        )

    def __len__(self) -> int:
        return len(self.ids)

    def assign(self, db: sqlite3.Connection, embeddings: np.ndarray, ts: float) -> list[int]:
        """Visitor id for each (unit) embedding of one snapshot; creates visitors as needed.

        Inside the caller's transaction: if it rolls back, call `load` to drop the in-memory changes.
        """
        emb = unit(np.asarray(embeddings, np.float32).reshape(-1, self.dim))
        rows = assign(unit(self.totals), emb, self.threshold)
        out = []
        for e, row in zip(emb, rows, strict=True):
            if row is None:
                cur = db.execute(
                    "INSERT INTO visitors (model, total, faces, created, last_seen) VALUES (?, ?, 1, ?, ?)",
                    (self.model, e.tobytes(), ts, ts),
                )
                self.ids = np.append(self.ids, int(cur.lastrowid or 0))
                self.totals = np.vstack([self.totals, e[None, :]])
                out.append(int(self.ids[-1]))
                continue
            self.totals[row] += e
            db.execute(
                "UPDATE visitors SET total = ?, faces = faces + 1, last_seen = MAX(last_seen, ?) WHERE id = ?",
                (self.totals[row].tobytes(), ts, int(self.ids[row])),
            )
            out.append(int(self.ids[row]))
        return out

    def dismiss(self, db: sqlite3.Connection, visitor: int) -> bool:
        """Forget a visitor: its faces stay archived, ungrouped (the next face founds a new visitor)."""
        gone = dismiss(db, visitor)
        if gone:
            self.load(db)
        return gone

    def drop_empty(self, db: sqlite3.Connection) -> int:
        """Forget visitors none of whose faces is archived any more (after retention)."""
        gone = db.execute(
            "DELETE FROM visitors WHERE model = ? AND id NOT IN "
            "(SELECT DISTINCT visitor FROM faces WHERE visitor IS NOT NULL)",
            (self.model,),
        ).rowcount
        if gone:
            self.load(db)
        return int(gone)


def sightings(db: sqlite3.Connection, visitor: int, since: float) -> int:
    """Events (not snapshots) since `since` (epoch s) in which the visitor was seen."""
    row = db.execute(
        "SELECT COUNT(DISTINCT f.event) FROM faces f JOIN snapshots s ON s.id = f.snapshot "
        "WHERE f.visitor = ? AND s.ts >= ?",
        (visitor, since),
    ).fetchone()
    return int(row[0])


def dismiss(db: sqlite3.Connection, visitor: int) -> bool:
    db.execute("UPDATE faces SET visitor = NULL WHERE visitor = ?", (visitor,))
    return db.execute("DELETE FROM visitors WHERE id = ?", (visitor,)).rowcount > 0


def set_label(db: sqlite3.Connection, visitor: int, label: str) -> bool:
    return db.execute("UPDATE visitors SET label = ? WHERE id = ?", (label, visitor)).rowcount > 0
