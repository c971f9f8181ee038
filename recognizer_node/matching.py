"""Open-set matching in numpy: which enrolled label (if any) a face embedding belongs to.

Per label, the score is the best cosine similarity over its enrollments ("max"), or the mean of its best
two ("top2"). A face is named when its best label scores at least `threshold` AND beats the second-best
label by more than `margin`; a face within the margin of two labels is *ambiguous* and reported as
unknown (with `closest` set): naming the wrong person is worse than one extra alert a human can judge.
See docs/accuracy.md for how the defaults were chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recognizer_node.embeddings import unit

Method = Literal["max", "top2"]


@dataclass(frozen=True)
class GalleryMatrix:
    """Enrollment embeddings grouped by label: rows starts[i]:starts[i+1] belong to labels[i]."""

    embeddings: np.ndarray  # (N, D) float32, unit rows, sorted by label
    labels: tuple[str, ...]
    starts: np.ndarray  # (L,) int64
    ids: np.ndarray  # (N,) enrollment ids, same order as embeddings

    @staticmethod
    def build(embeddings: np.ndarray, labels: list[str], ids: list[int] | np.ndarray) -> GalleryMatrix:
        """From unsorted rows with one label each."""
        names = sorted(set(labels))
        index = {name: i for i, name in enumerate(names)}
        codes = np.array([index[label] for label in labels], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(len(names)))
        emb = np.asarray(embeddings, dtype=np.float32).reshape(len(labels), -1)[order]
        return GalleryMatrix(
            np.ascontiguousarray(emb), tuple(names), starts.astype(np.int64), np.asarray(ids)[order]
        )

    @staticmethod
    def empty(dim: int = 128) -> GalleryMatrix:
        return GalleryMatrix(np.zeros((0, dim), np.float32), (), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.embeddings)


@dataclass(frozen=True)
class Match:
    label: str | None  # None: unknown
    similarity: float | None  # best label score (also when below the threshold); None: empty gallery
    closest: str | None  # best label even when not matched
    ambiguous: bool = False


def label_scores(sims: np.ndarray, starts: np.ndarray, method: Method = "max") -> np.ndarray:
    """(F, N) similarities to enrollments -> (F, L) per-label scores."""
    best = np.maximum.reduceat(sims, starts, axis=1)
    if method == "max":
        return best
    # top2: mask each label's best enrollment once, the max of the rest is the runner-up
    bounds = np.append(starts, sims.shape[1])
    counts = np.diff(bounds)
    is_best = sims >= np.repeat(best, counts, axis=1)
    n_best = np.add.reduceat(is_best, starts, axis=1)
    second = np.maximum.reduceat(np.where(is_best, -np.inf, sims), starts, axis=1)
    second = np.where((n_best > 1) | ~np.isfinite(second), best, second)
    return np.where(counts >= 2, (best + second) / 2, best)


def decide(scores: np.ndarray, labels: tuple[str, ...], threshold: float, margin: float) -> list[Match]:
    """(F, L) label scores -> one Match per face."""
    out = []
    for row in scores:
        if row.size == 0:
            out.append(Match(None, None, None))
            continue
        order = np.argsort(-row, kind="stable")
        best = float(row[order[0]])
        closest = labels[int(order[0])]
        second = float(row[order[1]]) if row.size > 1 else -np.inf
        ambiguous = best >= threshold and best - second <= margin
        label = closest if best >= threshold and not ambiguous else None
        out.append(Match(label, round(best, 4), closest, ambiguous))
    return out


def match_embeddings(
    embeddings: np.ndarray,
    gallery: GalleryMatrix,
    threshold: float,
    margin: float = 0.0,
    method: Method = "max",
) -> list[Match]:
    """(F, D) unit embeddings against the gallery."""
    probes = np.asarray(embeddings, dtype=np.float32).reshape(-1, gallery.embeddings.shape[1])
    if len(gallery) == 0:
        return [Match(None, None, None) for _ in range(len(probes))]
    sims = probes @ gallery.embeddings.T
    return decide(label_scores(sims, gallery.starts, method), gallery.labels, threshold, margin)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(unit(np.ravel(a)) @ unit(np.ravel(b)))
