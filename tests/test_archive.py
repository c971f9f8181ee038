"""The event archive: storage, restarts, retention by age and size, exact search (no models needed)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from homesec.contract import from_iso
from homesec.contract import to_iso as iso
from recognizer_node.archive import Archive, ArchivedFace, SnapshotRecord, file_stem
from recognizer_node.embeddings import EmbeddingMatrix


def parse_ts(text: str) -> float:
    return from_iso(text).timestamp()


DAY = 86400.0
NOW = parse_ts("2026-11-22T12:00:00Z")


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def people() -> np.ndarray:
    """Four well-separated 'identities' (random unit vectors in 128-D are nearly orthogonal)."""
    return unit(np.random.default_rng(7).normal(size=(4, 128)))


def near(v: np.ndarray, seed: int, noise: float = 0.3) -> np.ndarray:
    """Another 'photo' of the same person: similarity to `v` about 1/sqrt(1 + noise^2)."""
    return unit(v + noise * unit(np.random.default_rng(seed).normal(size=128)))


def record(
    event: str, seq: int, ts: float, *embs: np.ndarray, jpeg: bytes | None = b"\xff\xd8jpeg"
) -> SnapshotRecord:
    faces = [ArchivedFace((10 * i, 0, 10 * i + 80, 90), None, 0.1, 0.9, None, e) for i, e in enumerate(embs)]
    return SnapshotRecord(event, seq, "door", ts, "unknown" if embs else "no_face", faces, jpeg)


def open_archive(path: Path, **kw: float) -> Archive:
    return Archive(path, "sface@test", visitor_threshold=None, **kw)  # type: ignore[arg-type]


def test_snapshots_land_in_day_folders_and_survive_a_reopen(tmp_path: Path, people: np.ndarray) -> None:
    with open_archive(tmp_path) as a:
        a.add(record("ev1", 0, NOW - DAY, people[0]))
        a.add(record("ev1", 1, NOW - DAY, people[0], people[1]))
        a.add(record("ev2", 0, NOW, jpeg=None))  # no face, no JPEG kept
        assert a.count() == (3, 3)
    jpeg = tmp_path / "2026-11-21" / "ev1-1.jpg"
    assert jpeg.read_bytes() == b"\xff\xd8jpeg"
    with open_archive(tmp_path) as again:
        assert again.count() == (3, 3)
        (hit,) = again.search(near(people[1], 1), threshold=0.5)
        assert (hit.event_id, hit.seq, hit.camera, hit.snapshot) == ("ev1", 1, "door", jpeg)
        assert hit.ts_iso == "2026-11-21T12:00:00.000Z" and hit.box == (10, 0, 90, 90)


def test_a_redelivered_snapshot_is_not_archived_twice(tmp_path: Path, people: np.ndarray) -> None:
    with open_archive(tmp_path) as a:
        a.add(record("ev1", 0, NOW, people[0]))
        before = a.size_bytes
        a.add(record("ev1", 0, NOW, people[0]))
        assert a.count() == (1, 1) and a.size_bytes == before


def test_search_returns_each_event_once_with_its_best_face_best_first(
    tmp_path: Path, people: np.ndarray
) -> None:
    with open_archive(tmp_path) as a:
        a.search(people[0], 0.5)  # load the matrix first: later inserts must be appended to it
        a.add(record("ev1", 0, NOW - 3, near(people[0], 1, 0.6)))
        a.add(record("ev1", 1, NOW - 2, near(people[0], 2, 0.2), people[1]))  # the event's best face
        a.add(record("ev2", 0, NOW - 1, near(people[0], 3, 0.4)))
        a.add(record("ev3", 0, NOW, people[2]))  # someone else
        hits = a.search(people[0], threshold=0.5)
        assert [(h.event_id, h.seq) for h in hits] == [("ev1", 1), ("ev2", 0)]
        assert hits[0].similarity > hits[1].similarity > 0.5
        assert [h.event_id for h in a.search(people[0], 0.5, top=1)] == ["ev1"]
        assert a.search(people[3], 0.5) == []


def test_retention_by_age_deletes_old_snapshots_files_and_index_rows(
    tmp_path: Path, people: np.ndarray
) -> None:
    with open_archive(tmp_path, max_age_s=7 * DAY) as a:
        a.add(record("old", 0, NOW - 10 * DAY, people[0]))
        a.add(record("new", 0, NOW - 1 * DAY, near(people[0], 1)))
        assert len(a.search(people[0], 0.5)) == 2
        assert a.prune(now=NOW) == 1
        assert [h.event_id for h in a.search(people[0], 0.5)] == ["new"]  # gone from the matrix too
        assert a.count() == (1, 1)
        assert not (tmp_path / "2026-11-12").exists()  # the emptied day folder is removed
    with open_archive(tmp_path) as again:
        assert [h.event_id for h in again.search(people[0], 0.5)] == ["new"]


def test_retention_by_size_drops_the_oldest_first(tmp_path: Path, people: np.ndarray) -> None:
    jpeg = b"\xff\xd8" + bytes(10_000)
    with open_archive(tmp_path, max_bytes=50_000, prune_every=1000) as a:
        for i in range(8):  # ~10.7 kB each: the 5th insert is over budget
            a.add(record(f"ev{i}", 0, NOW - 100 + i, near(people[0], i), jpeg=jpeg))
            assert a.size_bytes <= 50_000
        kept = sorted(h.event_id for h in a.search(people[0], 0.3))
        assert 3 <= len(kept) <= 4  # pruned to under 90% of the budget
        assert kept == [f"ev{i}" for i in range(8 - len(kept), 8)]  # the newest survive
        files = sorted(p.name for p in tmp_path.rglob("*.jpg"))
        assert files == [f"{e}-0.jpg" for e in kept]


def test_size_accounting_survives_a_reopen(tmp_path: Path, people: np.ndarray) -> None:
    with open_archive(tmp_path) as a:
        a.add(record("ev1", 0, NOW, people[0], jpeg=bytes(5000)))
        size = a.size_bytes
    assert size > 5000
    with open_archive(tmp_path) as again:
        assert again.size_bytes == size


def test_embedding_matrix_grows_removes_and_keeps_the_best_face_per_event() -> None:
    m = EmbeddingMatrix(dim=2)
    m.append(np.array([[1, 0], [0, 1]], np.float32), [1, 2], [10, 20])
    for i in range(2000):  # past the initial capacity
        m.append(np.array([[0.6, 0.8]], np.float32), [100 + i], [30])
    assert len(m) == 2002
    assert m.best_per_event(np.array([1, 0]), 0.5, None) == [(1, 1.0), (100, pytest.approx(0.6))]
    m.remove([1, *range(100, 2100)])
    assert len(m) == 1 and m.best_per_event(np.array([0, 1]), 0.5, 5) == [(2, 1.0)]


def test_file_names_and_times() -> None:
    assert file_stem("5f0c8e1a", 2) == "5f0c8e1a-2"
    odd = file_stem("../../etc/passwd", 0)
    assert "/" not in odd and odd.endswith("-0") and len(odd) == 26
    assert iso(parse_ts("2026-11-21T18:02:11.5+01:00")) == "2026-11-21T17:02:11.500Z"
    assert abs(parse_ts(iso(time.time())) - time.time()) < 1
