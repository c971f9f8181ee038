"""Face embeddings as numpy rows: unit length, and the growable matrix the archive searches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (zero rows stay zero)."""
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


class EmbeddingMatrix:
    """A growable (N, D) float32 matrix with the face id and event of each row (the archive's index)."""

    def __init__(self, dim: int = 128, capacity: int = 1024) -> None:
        self.dim = dim
        self.n = 0
        self._emb = np.zeros((capacity, dim), np.float32)
        self._ids = np.zeros(capacity, np.int64)
        self._events = np.zeros(capacity, np.int64)

    def __len__(self) -> int:
        return self.n

    def append(self, emb: np.ndarray, ids: Sequence[int], events: Sequence[int]) -> None:
        k = len(ids)
        need = self.n + k
        if need > len(self._ids):  # double the capacity: amortised O(1) appends
            cap = max(need, 2 * len(self._ids))
            for name in ("_emb", "_ids", "_events"):
                old = getattr(self, name)
                new = np.zeros((cap, *old.shape[1:]), old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        self._emb[self.n : need] = np.asarray(emb, np.float32).reshape(k, self.dim)
        self._ids[self.n : need] = ids
        self._events[self.n : need] = events
        self.n = need

    def remove(self, ids: Sequence[int]) -> None:
        keep = ~np.isin(self._ids[: self.n], np.asarray(ids, np.int64))
        m = int(keep.sum())
        self._emb[:m] = self._emb[: self.n][keep]
        self._ids[:m] = self._ids[: self.n][keep]
        self._events[:m] = self._events[: self.n][keep]
        self.n = m

    def best_per_event(self, query: np.ndarray, threshold: float, top: int | None) -> list[tuple[int, float]]:
        """(face id, similarity) of the best face of each event at or above `threshold`, best first."""
        sims = self._emb[: self.n] @ np.asarray(query, np.float32).reshape(self.dim)
        idx = np.flatnonzero(sims >= threshold)
        order = idx[np.argsort(-sims[idx], kind="stable")]
        _, first = np.unique(self._events[order], return_index=True)  # first = best of each event
        best = order[np.sort(first)][:top]
        return [(int(self._ids[i]), float(sims[i])) for i in best]
