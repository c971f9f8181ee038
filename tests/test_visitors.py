"""Unknown visitors: online clustering (small arrays), then real faces through the archive and naming."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from homesec.contract import Face, NameVisitor, SnapshotMeta
from recognizer_node.embeddings import unit
from recognizer_node.gallery import Gallery
from recognizer_node.history import History
from recognizer_node.pipeline import Recognizer
from recognizer_node.settings import ArchiveSettings
from recognizer_node.visitors import assign
from tests.face_frames import snapshot_image


def test_assign_joins_the_nearest_centroid_above_the_threshold() -> None:
    centroids = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    faces = unit(np.array([[0.9, 0.1, 0], [0.1, 0.2, 0.9], [0.2, 0.9, 0]], np.float32))
    assert assign(centroids, faces, 0.5) == [0, None, 1]
    assert assign(centroids, faces, 0.999) == [None, None, None]
    assert assign(np.zeros((0, 3), np.float32), faces, 0.5) == [None, None, None]


def test_two_faces_of_one_snapshot_never_share_a_visitor() -> None:
    centroids = np.array([[1, 0], [0, 1]], np.float32)
    faces = unit(np.array([[1, 0.1], [1, 0.3]], np.float32))  # both closest to centroid 0
    assert assign(centroids, faces, 0.5) == [0, None]  # the better match keeps it; the other is new
    assert assign(centroids, faces[::-1].copy(), 0.5) == [None, 0]


# ------------------------------------------------------------------------------------- real faces


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[Gallery]:
    with Gallery(tmp_path / "gallery.sqlite3") as g:
        yield g


def open_history(rec: Recognizer, data_dir: Path, **kw: object) -> History:
    return History(ArchiveSettings(**kw), data_dir, rec)


def see(
    h: History,
    rec: Recognizer,
    gallery: Gallery,
    photo: str,
    event: str,
    seq: int = 0,
    *,
    framed: bool = False,
) -> list[Face]:
    """`photo` as a snapshot; `framed`: its face small in a wide frame, which only the motion box finds."""
    data, (width, height), box = snapshot_image(photo, framed)
    meta = SnapshotMeta(
        camera="door", event_id=event, seq=seq, burst=2, trigger="motion", width=width, height=height,
        motion_box=box, ts="2026-11-22T10:00:00.000Z",
    )  # fmt: skip
    recognition = rec.recognize(data, gallery, meta.motion_box, (meta.width, meta.height))
    assert framed == ("detect_roi" in recognition.timings_ms)
    return h.record(meta, data, recognition)


def test_the_same_stranger_is_one_visitor_and_another_person_another(
    rec: Recognizer, gallery: Gallery, tmp_path: Path
) -> None:
    h = open_history(rec, tmp_path)
    (a,) = see(h, rec, gallery, "obama_train.jpg", "e1")
    (b,) = see(h, rec, gallery, "obama_probe.jpg", "e2")
    (b2,) = see(h, rec, gallery, "obama_probe.jpg", "e2", seq=1)  # a 2nd snapshot of the same event
    (c,) = see(h, rec, gallery, "biden_train.jpg", "e3")
    assert a.label is None and a.visitor is not None
    assert a.visitor == b.visitor == b2.visitor != c.visitor
    assert (a.visitor_seen_week, b.visitor_seen_week, b2.visitor_seen_week) == (1, 2, 2)  # per event
    assert c.visitor_seen_week == 1
    h.close()
    # after a restart the ids are the same; three people in one photo are three visitors
    h = open_history(rec, tmp_path)
    faces = see(h, rec, gallery, "two_faces.jpg", "e4")
    visitors = [f.visitor for f in faces]
    assert len(set(visitors)) == 3
    assert a.visitor in visitors and c.visitor in visitors  # obama and biden stand in it
    h.close()


def test_a_face_only_the_motion_box_finds_joins_its_visitor(
    rec: Recognizer, gallery: Gallery, tmp_path: Path
) -> None:
    h = open_history(rec, tmp_path)
    (a,) = see(h, rec, gallery, "obama_train.jpg", "e1")
    (b,) = see(h, rec, gallery, "obama_probe.jpg", "e2", framed=True)
    (c,) = see(h, rec, gallery, "biden_train.jpg", "e3", framed=True)
    assert a.visitor is not None and b.visitor == a.visitor
    assert c.visitor is not None and c.visitor != a.visitor
    assert b.visitor_seen_week == 2
    h.close()


def test_naming_a_visitor_enrolls_its_faces(rec: Recognizer, gallery: Gallery, tmp_path: Path) -> None:
    h = open_history(rec, tmp_path)
    (a,) = see(h, rec, gallery, "obama_train.jpg", "e1")
    see(h, rec, gallery, "obama_probe.jpg", "e2")
    see(h, rec, gallery, "stranger.png", "e3")
    assert a.visitor is not None
    result = h.name_visitor(NameVisitor(visitor=int(a.visitor), label="Barack"), gallery)
    assert result.ok and result.enrolled == 2 and result.labels == {"Barack": 2}
    assert {e.source for e in gallery.enrollments()} == {f"visitor:{a.visitor}"}
    (known,) = see(h, rec, gallery, "obama_probe.jpg", "e5")
    assert known.label == "Barack" and known.visitor is None  # named people are not visitors
    missing = h.name_visitor(NameVisitor(visitor=999, label="x"), gallery)
    assert not missing.ok and "999" in (missing.reason or "")
    h.close()


def test_small_faces_and_disabled_clustering_get_no_visitor(
    rec: Recognizer, gallery: Gallery, tmp_path: Path
) -> None:
    h = open_history(rec, tmp_path / "a", visitor_min_face_px=400)  # wider than any test face
    assert see(h, rec, gallery, "obama_train.jpg", "e1")[0].visitor is None
    h.close()
    h = open_history(rec, tmp_path / "b", visitors=False)
    assert see(h, rec, gallery, "obama_train.jpg", "e1")[0].visitor is None
    assert h.archive.count() == (1, 1)  # still archived
    h.close()
