"""The SQLite gallery: operations, label rules, durability across reopen, transactions, cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from homesec.contract import ContractError
from recognizer_node.gallery import Gallery

MODEL = "sface@test"


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def gallery(tmp_path: Path) -> Gallery:
    return Gallery(tmp_path / "gallery.sqlite3")


def test_add_list_and_matrix(gallery: Gallery) -> None:
    a = gallery.add("alice", vec(1), MODEL, b"png1", quality=0.9, source="cli")
    b = gallery.add("bob", vec(2), MODEL, b"png2")
    c = gallery.add("alice", vec(3), MODEL, b"png3")
    assert gallery.labels() == {"alice": 2, "bob": 1}
    m = gallery.matrix(MODEL)
    assert m.labels == ("alice", "bob")
    assert sorted(m.ids.tolist()) == sorted([a, b, c])
    np.testing.assert_allclose(m.embeddings[list(m.ids).index(b)], vec(2))
    assert gallery.crop(a) == (b"png1", "png")
    assert gallery.enrollments("alice")[0].source == "cli"


def test_labels_are_validated(gallery: Gallery) -> None:
    for bad in ("../etc", "a/b", "", "x+y", "#"):
        with pytest.raises(ContractError):
            gallery.add(bad, vec(1), MODEL, b"")
    assert gallery.count() == 0


def test_labels_are_case_insensitive_and_keep_the_first_spelling(gallery: Gallery) -> None:
    gallery.add("Alice", vec(1), MODEL, b"")
    gallery.add("alice", vec(2), MODEL, b"")
    assert gallery.labels() == {"Alice": 2}
    assert gallery.delete_label("ALICE") == 2


def test_delete_rename_and_delete_enrollment(gallery: Gallery) -> None:
    a = gallery.add("alice", vec(1), MODEL, b"")
    gallery.add("alice", vec(2), MODEL, b"")
    gallery.add("bob", vec(3), MODEL, b"")
    assert gallery.rename_label("bob", "robert") == 1
    assert gallery.rename_label("nobody", "x") == 0
    assert gallery.delete_enrollment(a) is True
    assert gallery.delete_enrollment(a) is False
    assert gallery.labels() == {"alice": 1, "robert": 1}
    assert gallery.rename_label("robert", "alice") == 1  # merging into an existing label
    assert gallery.labels() == {"alice": 2}
    assert gallery.delete_label("alice") == 2
    assert gallery.labels() == {}
    assert len(gallery.matrix(MODEL)) == 0


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    with Gallery(path) as g:
        g.add("alice", vec(1), MODEL, b"crop", quality=0.5)
    with Gallery(path) as g:
        assert g.labels() == {"alice": 1}
        np.testing.assert_allclose(g.matrix(MODEL).embeddings[0], vec(1))


def test_a_failed_write_leaves_nothing_behind(gallery: Gallery) -> None:
    gallery.add("alice", vec(1), MODEL, b"")

    def broken(_crop: bytes, _fmt: str) -> np.ndarray:
        raise RuntimeError("crash mid-way")

    gallery.add("bob", vec(2), "old-model", b"")
    gallery.add("cy", vec(3), "old-model", b"")
    with pytest.raises(RuntimeError):
        gallery.reembed(MODEL, broken)
    assert gallery.stale(MODEL) == 2  # all-or-nothing


def test_a_crash_mid_transaction_loses_no_committed_enrollment(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    g = Gallery(path)
    g.add("alice", vec(1), MODEL, b"")
    # another writer dies mid-transaction (its connection is dropped without commit)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("DELETE FROM enrollments")
    other.close()
    with Gallery(path) as reopened:
        assert reopened.labels() == {"alice": 1}
    g.close()


def test_matrix_cache_follows_changes_from_this_and_other_connections(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    g1, g2 = Gallery(path), Gallery(path)
    g1.add("alice", vec(1), MODEL, b"")
    first = g1.matrix(MODEL)
    assert g1.matrix(MODEL) is first  # cached
    g2.add("bob", vec(2), MODEL, b"")  # another connection (a second process, say)
    assert g1.matrix(MODEL).labels == ("alice", "bob")
    g1.delete_label("bob")
    assert g1.matrix(MODEL).labels == ("alice",)
    g1.close()
    g2.close()


def test_other_models_are_stale_until_reembedded(gallery: Gallery) -> None:
    gallery.add("alice", vec(1), "old-model", b"crop")
    assert len(gallery.matrix(MODEL)) == 0
    assert gallery.stale(MODEL) == 1
    assert gallery.reembed(MODEL, lambda crop, fmt: vec(9)) == 1
    np.testing.assert_allclose(gallery.matrix(MODEL).embeddings[0], vec(9))
    assert gallery.stale(MODEL) == 0


def test_negatives_follow_their_label_and_reach_the_matrix(gallery: Gallery) -> None:
    gallery.add("Alice", vec(1), MODEL, b"")
    gallery.add("bob", vec(2), MODEL, b"")
    gallery.add_negative("alice", vec(3), MODEL, b"crop", "png", source="photo")
    gallery.add_negative("nobody", vec(4), MODEL)  # a label with no enrollment vetoes nothing
    assert gallery.negatives() == {"Alice": 1, "nobody": 1}
    m = gallery.matrix(MODEL)
    np.testing.assert_allclose(m.negatives, vec(3)[None])
    assert [m.labels[i] for i in m.negative_of] == ["Alice"]
    assert gallery.rename_label("alice", "bob") == 1  # merged: the negative goes along
    assert gallery.negatives() == {"bob": 1, "nobody": 1}
    assert gallery.delete_label("bob") == 2  # enrollments counted; its negatives go with it
    assert gallery.negatives() == {"nobody": 1}
    (left,) = gallery.negative_faces()
    assert (left.label, left.has_crop) == ("nobody", False)


def test_negatives_with_a_face_are_reembedded_with_the_gallery(gallery: Gallery) -> None:
    gallery.add("alice", vec(1), "old-model", b"crop")
    gallery.add_negative("alice", vec(2), "old-model", b"crop", "png")
    gallery.add_negative("alice", vec(3), "old-model")  # no face kept: cannot follow the new model
    assert gallery.stale(MODEL) == 2
    assert gallery.reembed(MODEL, lambda crop, fmt: vec(9)) == 2
    assert gallery.stale(MODEL) == 0
    assert len(gallery.matrix(MODEL).negatives) == 1
