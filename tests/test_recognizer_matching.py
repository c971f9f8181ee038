"""Open-set matching: per-label scores, threshold, margin (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from recognizer_node.matching import (
    GalleryMatrix,
    conflicts,
    cosine,
    decide,
    label_scores,
    match_embeddings,
    resembles,
)


def unit(*v: float) -> np.ndarray:
    a = np.asarray(v, np.float32)
    return a / np.linalg.norm(a)


def test_build_groups_rows_by_label() -> None:
    g = GalleryMatrix.build(np.eye(4, dtype=np.float32), ["bob", "al", "bob", "al"], [1, 2, 3, 4])
    assert g.labels == ("al", "bob")
    assert g.starts.tolist() == [0, 2]
    assert g.ids.tolist() == [2, 4, 1, 3]


def test_label_scores_max_and_top2() -> None:
    sims = np.array([[0.9, 0.1, 0.5, 0.4, 0.3]], np.float32)  # label A: 0.9, 0.1; label B: 0.5, 0.4, 0.3
    starts = np.array([0, 2])
    np.testing.assert_allclose(label_scores(sims, starts, "max"), [[0.9, 0.5]])
    np.testing.assert_allclose(label_scores(sims, starts, "top2"), [[0.5, 0.45]])
    single = np.array([[0.7, 0.2]], np.float32)  # one enrollment each: top2 is the score itself
    np.testing.assert_allclose(label_scores(single, np.array([0, 1]), "top2"), [[0.7, 0.2]])
    tie = np.array([[0.6, 0.6]], np.float32)
    np.testing.assert_allclose(label_scores(tie, np.array([0]), "top2"), [[0.6]])


def test_decide_threshold_margin_and_closest() -> None:
    labels = ("al", "bob", "cy")
    scores = np.array(
        [
            [0.80, 0.20, 0.10],  # clear match
            [0.30, 0.20, 0.10],  # below threshold: unknown, but closest is reported
            [0.60, 0.58, 0.10],  # two labels within the margin: ambiguous -> unknown
        ]
    )
    a, b, c = decide(scores, labels, threshold=0.4, margin=0.05)
    assert (a.label, a.similarity, a.closest) == ("al", 0.8, "al")
    assert (b.label, b.closest, b.ambiguous) == (None, "al", False)
    assert (c.label, c.closest, c.ambiguous) == (None, "al", True)
    (c0,) = decide(scores[2:], labels, threshold=0.4, margin=0.0)
    assert c0.label == "al"


def test_match_embeddings_end_to_end_and_empty_gallery() -> None:
    g = GalleryMatrix.build(np.stack([unit(1, 0, 0), unit(0, 1, 0)]), ["al", "bob"], [1, 2])
    (m,) = match_embeddings(unit(0.9, 0.1, 0)[None], g, threshold=0.5)
    assert m.label == "al" and m.similarity == pytest.approx(0.9939, abs=1e-3)
    (stranger,) = match_embeddings(unit(0, 0, 1)[None], g, threshold=0.5)
    assert stranger.label is None
    (nobody,) = match_embeddings(unit(1, 0, 0)[None], GalleryMatrix.empty(3), threshold=0.5)
    assert (nobody.label, nobody.similarity, nobody.closest) == (None, None, None)


def test_cosine() -> None:
    assert cosine(np.array([1, 0]), np.array([2, 0])) == pytest.approx(1.0)
    assert cosine(np.array([1, 0]), np.array([0, 3])) == pytest.approx(0.0)


def test_an_ambiguous_face_says_between_whom() -> None:
    (m,) = decide(np.array([[0.60, 0.58, 0.10]]), ("al", "bob", "cy"), threshold=0.4, margin=0.05)
    assert (m.label, m.closest, m.runner_up, m.ambiguous) == (None, "al", "bob", True)
    (clear,) = decide(np.array([[0.80, 0.20]]), ("al", "bob"), threshold=0.4, margin=0.05)
    assert clear.runner_up is None


def test_a_face_more_like_a_negative_of_a_label_is_not_named_it() -> None:
    al, look_alike, bob = unit(1, 0, 0), unit(0.8, 0.6, 0), unit(0, 0, 1)
    plain = GalleryMatrix.build(np.stack([al, bob]), ["al", "bob"], [1, 2])
    (before,) = match_embeddings(look_alike[None], plain, threshold=0.5)
    assert before.label == "al"  # 0.8 to al
    g = GalleryMatrix.build(np.stack([al, bob]), ["al", "bob"], [1, 2], look_alike[None], ["al"])
    (after,) = match_embeddings(unit(0.75, 0.66, 0)[None], g, threshold=0.5)  # her again, another photo
    assert (after.label, after.vetoed) == (None, ("al",))
    (himself,) = match_embeddings(unit(0.98, 0.2, 0)[None], g, threshold=0.5)
    assert himself.label == "al" and himself.vetoed == ()
    # a vetoed label is not a rival either: the next label can still name the face
    close = GalleryMatrix.build(
        np.stack([al, look_alike]), ["al", "bea"], [1, 2], unit(0.7, 0.7, 0)[None], ["al"]
    )
    (bea,) = match_embeddings(unit(0.78, 0.62, 0)[None], close, threshold=0.5, margin=0.05)
    assert bea.label == "bea" and bea.vetoed == ("al",)


def test_negatives_of_labels_without_enrollments_are_left_out() -> None:
    g = GalleryMatrix.build(
        np.stack([unit(1, 0, 0)]), ["al"], [1], np.stack([unit(0, 1, 0)] * 2), ["al", "zed"]
    )
    assert len(g.negatives) == 1 and g.negative_of.tolist() == [0]


def test_resembles_names_the_other_label_a_new_face_already_matches() -> None:
    al, bob = unit(1, 0, 0), unit(0, 1, 0)
    g = GalleryMatrix.build(np.stack([al, bob]), ["al", "bob"], [1, 2])
    assert resembles(unit(1, 0.1, 0), g, "carol", threshold=0.5, margin=0.05) == (
        "al",
        pytest.approx(0.995, abs=1e-3),
    )
    assert resembles(unit(1, 0.1, 0), g, "AL", threshold=0.5, margin=0.05) is None  # more of the same person
    assert resembles(unit(0, 0, 1), g, "carol", threshold=0.5, margin=0.05) is None  # a new face
    # al's own new photo that also looks like bob (al 0.71, bob 0.70): it would leave them ambiguous
    assert resembles(unit(1, 0.98, 0), g, "al", threshold=0.5, margin=0.05) is not None
    assert resembles(unit(1, 0.1, 0), GalleryMatrix.empty(3), "al", threshold=0.5, margin=0.05) is None


def test_conflicts_are_labels_whose_enrollments_match_each_other() -> None:
    rows = np.stack([unit(1, 0, 0), unit(0.9, 0.44, 0), unit(0, 1, 0), unit(0, 0, 1)])
    g = GalleryMatrix.build(rows, ["owner", "obama", "owner", "bob"], [1, 2, 3, 4])
    assert conflicts(g, threshold=0.5) == [("obama", "owner", pytest.approx(0.9, abs=0.01))]
    assert conflicts(g, threshold=0.95) == []
    assert conflicts(GalleryMatrix.empty(3), threshold=0.5) == []
