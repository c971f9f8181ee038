"""Searching a folder of photos: ranking with real models, and the embedding cache (counted, not timed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recognizer_node.directory_search import DirectoryIndex, IndexedFace, rank
from recognizer_node.pipeline import Analysis, NoFaceError, Recognizer, query_face
from tests.conftest import FACES


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Copies of the test photos, one in a sub-folder, plus a corrupt 'photo' and a non-image."""
    root = tmp_path / "photos"
    (root / "2024" / "summer").mkdir(parents=True)
    for name in ("obama_train.jpg", "biden_train.jpg", "stranger.png", "two_faces.jpg"):
        shutil.copy(FACES / name, root / name)
    shutil.copy(FACES / "obama_probe.jpg", root / "2024" / "summer" / "OBAMA.JPEG")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (root / "notes.txt").write_text("not an image")
    return root


class Counting:
    """`analyze` that counts its calls (each one is a full embedding of an image)."""

    def __init__(self, rec: Recognizer) -> None:
        self.rec = rec
        self.calls = 0

    def __call__(self, data: bytes) -> Analysis:
        self.calls += 1
        return self.rec.analyze(data, embed_all=True)


def refresh(index: DirectoryIndex, root: Path, analyze: Callable[[bytes], Analysis]) -> list[IndexedFace]:
    return index.refresh(root, analyze).faces


def test_finds_obama_above_the_threshold_and_ranks_his_photos_first(
    rec: Recognizer, photos: Path, tmp_path: Path
) -> None:
    query = query_face(rec, (FACES / "obama_probe.jpg").read_bytes()).embedding
    assert query is not None
    with DirectoryIndex(tmp_path / "index.sqlite3", rec.embedder_id) as index:
        report = index.refresh(photos, Counting(rec))
    assert report.images == 6 and report.analyzed == 6
    assert [(p.name, "not an image" in e or "corrupt" in e) for p, e in report.errors] == [
        ("broken.jpg", True)
    ]
    assert len(report.faces) == 1 + 1 + 1 + 3 + 1
    threshold = rec.settings.match_threshold
    hits = rank(query, report.faces, threshold)
    names = [f.path.name for f, _ in hits]
    assert names == ["OBAMA.JPEG", "obama_train.jpg", "two_faces.jpg"]  # the same photo, then the others
    assert hits[0][1] > 0.99 and all(s >= threshold for _, s in hits)
    assert hits[1][1] >= hits[2][1]
    everyone = rank(query, report.faces, -1.0)
    assert len(everyone) == 7 and [f.path.name for f, _ in everyone[:3]] == names  # strangers rank below
    assert rank(query, report.faces, threshold, top=1)[0][0].path.name == "OBAMA.JPEG"
    wide = rank(query, report.faces, threshold, min_face=200)  # two_faces' obama is 188 px wide
    assert [f.path.name for f, _ in wide] == ["OBAMA.JPEG", "obama_train.jpg"]


def test_the_index_is_reused_and_refreshed_when_a_file_changes(
    rec: Recognizer, photos: Path, tmp_path: Path
) -> None:
    analyze = Counting(rec)
    db = tmp_path / "index.sqlite3"
    with DirectoryIndex(db, rec.embedder_id) as index:
        first = refresh(index, photos, analyze)
    assert analyze.calls == 6
    with DirectoryIndex(db, rec.embedder_id) as index:  # a new run: the cache is on disk
        second = refresh(index, photos, analyze)
        assert analyze.calls == 6  # nothing re-embedded (the corrupt file is remembered too)
        assert [(f.path, f.box) for f in second] == [(f.path, f.box) for f in first]
        assert all(np.array_equal(a.embedding, b.embedding) for a, b in zip(first, second, strict=True))
        # a changed file (new mtime) is embedded again; a new one is added; a deleted one disappears
        target = photos / "stranger.png"
        st = target.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        shutil.copy(FACES / "biden_train.jpg", photos / "2024" / "biden_again.jpg")
        (photos / "obama_train.jpg").unlink()
        third = refresh(index, photos, analyze)
        assert analyze.calls == 6 + 2
        names = sorted({f.path.name for f in third})
        assert names == ["OBAMA.JPEG", "biden_again.jpg", "biden_train.jpg", "stranger.png", "two_faces.jpg"]
        refresh(index, photos, analyze)
        assert analyze.calls == 8
    with DirectoryIndex(db, "another-model@1234") as other:  # another embedder: its own entries
        refresh(other, photos, analyze)
        assert analyze.calls == 8 + 6


def test_a_query_without_a_face_is_refused(rec: Recognizer, tmp_path: Path) -> None:
    from recognizer_node.imageio import encode_jpeg

    blank = encode_jpeg(np.full((120, 160, 3), 128, np.uint8))
    with pytest.raises(NoFaceError, match="no face"):
        query_face(rec, blank)
