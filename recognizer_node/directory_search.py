"""Searching a folder of photos for a face ("find this face in these photos").

A directory's faces are indexed in a cache (`<data_dir>/search/index.sqlite3`) keyed by absolute path,
size, mtime_ns and embedding model: a second search over the same folder embeds only new or changed
images. Every detected face is embedded (also those too small or blurred to be recognized), so
`--min-face` decides what counts. Unreadable or corrupt images are reported and skipped (and remembered,
so they are not decoded again until they change).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from homesec.contract import ContractError
from recognizer_node.db import open_db

if TYPE_CHECKING:
    from recognizer_node.pipeline import Analysis

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT NOT NULL,          -- absolute
    model TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    boxes TEXT NOT NULL,         -- JSON [[x1, y1, x2, y2], ...]
    embeddings BLOB,             -- (faces, D) float32
    error TEXT,                  -- why the image could not be read
    PRIMARY KEY (path, model)
);
"""
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class IndexedFace:
    path: Path  # as found under the searched directory
    box: Box
    embedding: np.ndarray = field(repr=False)

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


@dataclass
class IndexReport:
    faces: list[IndexedFace] = field(default_factory=list)
    images: int = 0
    analyzed: int = 0  # images embedded this time (new or changed); the rest came from the cache
    errors: list[tuple[Path, str]] = field(default_factory=list)


def image_files(root: Path) -> Iterator[Path]:
    """Images below `root` (recursive, sorted, symlinked directories not followed)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(dirpath) / name


class DirectoryIndex:
    """The cache of a folder's faces; every file is committed on its own (an interrupted run keeps them)."""

    def __init__(self, path: Path, model: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model = model
        # a cache: losing the last rows to a power cut costs a re-embed, so NORMAL is enough
        self._db = open_db(path, INDEX_SCHEMA, synchronous="NORMAL")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DirectoryIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cached(self, root: str) -> dict[str, tuple[int, int, str, bytes | None, str | None]]:
        lo, hi = root.rstrip("/") + "/", root.rstrip("/") + "0"  # '0' follows '/': the subtree's range
        rows = self._db.execute(
            "SELECT path, size, mtime_ns, boxes, embeddings, error FROM files"
            " WHERE model = ? AND path >= ? AND path < ?",
            (self.model, lo, hi),
        )
        return {str(r[0]): (int(r[1]), int(r[2]), str(r[3]), r[4], r[5]) for r in rows}

    def refresh(
        self,
        root: Path,
        analyze: Callable[[bytes], Analysis],
        show: Callable[[Iterable[Path]], Iterable[Path]] | None = None,
    ) -> IndexReport:
        """Every face below `root`, embedding only images that are new or changed since last time
        (`show` wraps the walk through the images: a progress bar)."""
        cached = self._cached(os.path.abspath(root))
        report = IndexReport()
        for path in image_files(root) if show is None else show(image_files(root)):
            key = os.path.abspath(path)
            try:
                st = path.stat()
            except OSError as exc:
                report.errors.append((path, f"cannot read: {exc.strerror}"))
                continue
            report.images += 1
            row = cached.pop(key, None)
            if row is None or (row[0], row[1]) != (st.st_size, st.st_mtime_ns):
                row = self._index(key, path, st.st_size, st.st_mtime_ns, analyze)
                report.analyzed += 1
            _, _, boxes, blob, error = row
            box_list: list[list[int]] = json.loads(boxes)
            if error is not None:
                report.errors.append((path, error))
                continue
            emb: np.ndarray = (
                np.frombuffer(blob, np.float32).reshape(len(box_list), -1) if blob else np.zeros((0, 1))
            )
            report.faces += [
                IndexedFace(path, (b[0], b[1], b[2], b[3]), e) for b, e in zip(box_list, emb, strict=True)
            ]
        self._db.executemany(
            "DELETE FROM files WHERE path = ? AND model = ?", [(k, self.model) for k in cached]
        )
        return report

    def _index(
        self, key: str, path: Path, size: int, mtime_ns: int, analyze: Callable[[bytes], Analysis]
    ) -> tuple[int, int, str, bytes | None, str | None]:
        boxes: list[list[int]] = []
        blob: bytes | None = None
        error: str | None = None
        try:
            faces = analyze(path.read_bytes()).faces
            boxes = [list(f.box) for f in faces]
            embs = [f.embedding for f in faces if f.embedding is not None]
            blob = np.stack(embs).astype(np.float32).tobytes() if embs else None
        except OSError as exc:
            error = f"cannot read: {exc.strerror}"
        except ContractError as exc:
            error = str(exc)
        except Exception as exc:  # a batch over thousands of files must not stop at one odd image
            error = f"{type(exc).__name__}: {exc}"
        row = (size, mtime_ns, json.dumps(boxes), blob, error)
        self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", (key, self.model, *row))
        return row


def rank(
    query: np.ndarray,
    faces: Sequence[IndexedFace],
    threshold: float,
    min_face: int = 0,
    top: int | None = None,
) -> list[tuple[IndexedFace, float]]:
    """Faces at least `threshold` similar to `query` and `min_face` px wide, most similar first."""
    kept = [f for f in faces if f.width >= min_face]
    if not kept:
        return []
    sims = np.stack([f.embedding for f in kept]).astype(np.float32) @ np.asarray(query, np.float32)
    order = [int(i) for i in np.argsort(-sims, kind="stable") if sims[i] >= threshold][:top]
    return [(kept[i], round(float(sims[i]), 4)) for i in order]
