"""Open-set matching in numpy: which enrolled label (if any) a face embedding belongs to.

Per label, the score is the best cosine similarity over its enrollments ("max"), or the mean of its best
two ("top2"). A face is named when its best label scores at least `threshold` AND beats the second-best
label by more than `margin`; a face within the margin of two labels is *ambiguous* and reported as
unknown (with `closest` and the other label, `runner_up`, set): naming the wrong person is worse than
one extra alert a human can judge. See docs/accuracy.md for how the defaults were chosen.

Negatives are faces a household said were wrongly named ("not X"). A face more similar to one of X's
negatives than to X's own enrollments is not named X: X is *vetoed* for it and left out of the ranking
(the next label may still name it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    # "not X" faces: (M, D) unit rows, and the index in `labels` of the label each one is not
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 128), np.float32))
    negative_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @staticmethod
    def build(
        embeddings: np.ndarray,
        labels: list[str],
        ids: list[int] | np.ndarray,
        negatives: np.ndarray | None = None,
        negative_labels: Sequence[str] = (),
    ) -> GalleryMatrix:
        """From unsorted rows with one label each (and negatives: rows with the label they are not;
        a negative of a label with no enrollment vetoes nothing and is left out)."""
        names = sorted(set(labels))
        index = {name: i for i, name in enumerate(names)}
        codes = np.array([index[label] for label in labels], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(len(names)))
        emb = np.asarray(embeddings, dtype=np.float32).reshape(len(labels), -1)[order]
        keep = [i for i, label in enumerate(negative_labels) if label in index]
        dim = emb.shape[1]
        neg = np.zeros((0, dim), np.float32) if negatives is None else np.asarray(negatives, np.float32)
        return GalleryMatrix(
            np.ascontiguousarray(emb),
            tuple(names),
            starts.astype(np.int64),
            np.asarray(ids)[order],
            np.ascontiguousarray(neg.reshape(-1, dim)[keep]),
            np.array([index[negative_labels[i]] for i in keep], dtype=np.int64),
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
    runner_up: str | None = None  # ambiguous: the label within the margin of `closest`
    vetoed: tuple[str, ...] = ()  # labels this face is more like a negative of than like themselves


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


def negative_scores(probes: np.ndarray, gallery: GalleryMatrix) -> np.ndarray:
    """(F, L): per face and label, the best similarity to one of that label's negatives (-inf: none)."""
    out = np.full((len(probes), len(gallery.labels)), -np.inf, np.float32)
    if len(gallery.negatives):
        sims = probes @ gallery.negatives.T
        for col, label in enumerate(gallery.negative_of):
            out[:, label] = np.maximum(out[:, label], sims[:, col])
    return out


def decide(
    scores: np.ndarray,
    labels: tuple[str, ...],
    threshold: float,
    margin: float,
    vetoed: np.ndarray | None = None,
) -> list[Match]:
    """(F, L) label scores (and, per face, which labels are vetoed) -> one Match per face."""
    out = []
    for i, row in enumerate(scores):
        if row.size == 0:
            out.append(Match(None, None, None))
            continue
        order = [int(j) for j in np.argsort(-row, kind="stable")]
        banned = np.zeros(row.size, bool) if vetoed is None else vetoed[i]
        ranked = [j for j in order if not banned[j]] or order[:1]  # all vetoed: report the closest
        best = float(row[ranked[0]])
        closest = labels[ranked[0]]
        second = float(row[ranked[1]]) if len(ranked) > 1 else -np.inf
        allowed = not banned[ranked[0]]
        ambiguous = bool(allowed and best >= threshold and best - second <= margin)
        label = closest if allowed and best >= threshold and not ambiguous else None
        runner_up = labels[ranked[1]] if ambiguous else None
        no = tuple(labels[j] for j in order if banned[j])
        out.append(Match(label, round(best, 4), closest, ambiguous, runner_up, no))
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
    scores = scores_against(probes, gallery, method)
    vetoed = negative_scores(probes, gallery) > scores
    return decide(scores, gallery.labels, threshold, margin, vetoed)


def scores_against(probes: np.ndarray, gallery: GalleryMatrix, method: Method = "max") -> np.ndarray:
    """(F, D) unit embeddings -> (F, L) label scores."""
    return label_scores(probes @ gallery.embeddings.T, gallery.starts, method)


def resembles(
    embedding: np.ndarray,
    gallery: GalleryMatrix,
    label: str,
    threshold: float,
    margin: float,
    method: Method = "max",
) -> tuple[str, float] | None:
    """The other label a face about to be enrolled as `label` already matches, with its score, or None.

    Another label matches when it scores at least `threshold` (and the face is not more like one of its
    negatives) and `label` does not beat it by more than `margin`: enrolled as it is, the face would be
    named that other label, or leave both labels ambiguous.
    """
    if len(gallery) == 0:
        return None
    probe = np.asarray(embedding, np.float32).reshape(1, -1)
    scores = scores_against(probe, gallery, method)[0]
    scores = np.where(negative_scores(probe, gallery)[0] > scores, -np.inf, scores)
    own = [i for i, name in enumerate(gallery.labels) if name.lower() == label.lower()]
    mine = float(scores[own[0]]) if own else -np.inf
    others = [(float(scores[i]), name) for i, name in enumerate(gallery.labels) if i not in own]
    if not others:
        return None
    score, name = max(others)
    return (name, round(score, 4)) if score >= threshold and score >= mine - margin else None


def conflicts(gallery: GalleryMatrix, threshold: float) -> list[tuple[str, str, float]]:
    """Pairs of labels with an enrollment of one at least `threshold` similar to an enrollment of the
    other, most similar first: (label, other, similarity)."""
    emb, starts, labels = gallery.embeddings, gallery.starts, gallery.labels
    if len(labels) < 2:
        return []
    best = label_scores(emb @ emb.T, starts, "max")  # (N, L): each enrollment against each label
    per_label = np.maximum.reduceat(best, starts, axis=0)  # (L, L)
    pairs = [
        (labels[a], labels[b], round(float(per_label[a, b]), 4))
        for a in range(len(labels))
        for b in range(a + 1, len(labels))
        if per_label[a, b] >= threshold
    ]
    return sorted(pairs, key=lambda c: -c[2])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(unit(np.ravel(a)) @ unit(np.ravel(b)))
