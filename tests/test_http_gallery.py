"""The gallery over HTTP: labels with counts and thumbnails, crops, delete, rename and merge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recognizer_node.pipeline import Recognizer
from tests.http_server import Api, photo, rec, serve

__all__ = ["rec"]


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def enroll(api: Api, name: str, label: str, force: bool = False) -> int:
    form = {"label": label, "force": str(force).lower()}
    r = api.admin.post("/api/image/train", files={"File": (name, photo(name))}, data=form)
    assert r.json()["ok"] is True, r.text
    enrollment: int = r.json()["enrollment_id"]
    return enrollment


def test_labels_with_counts_and_a_thumbnail(api: Api) -> None:
    first = enroll(api, "obama_train.jpg", "jamie")
    second = enroll(api, "obama_probe.jpg", "Jamie")  # the same person, whatever the case
    other = enroll(api, "biden_train.jpg", "sam")
    labels = api.viewer.get("/api/gallery/labels").json()
    assert [(entry["label"], entry["enrollments"]) for entry in labels] == [("jamie", 2), ("sam", 1)]
    assert labels[0]["best"] in (first, second) and labels[1]["best"] == other
    crop = api.viewer.get(f"/api/gallery/enrollments/{labels[0]['best']}/crop")
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/png"
    assert crop.content.startswith(b"\x89PNG")
    listed = api.viewer.get("/api/gallery/labels/JAMIE").json()
    assert [e["id"] for e in listed] == [first, second] and listed[0]["source"] == "http"


def test_missing_things_are_404_with_the_reason(api: Api) -> None:
    assert api.viewer.get("/api/gallery/enrollments/99/crop").status_code == 404
    assert api.viewer.get("/api/gallery/labels/nobody").status_code == 404
    gone = api.admin.delete("/api/gallery/enrollments/99")
    assert gone.status_code == 404 and gone.json()["detail"] == "no enrollment 99"
    assert api.admin.delete("/api/gallery/labels/nobody").status_code == 404
    bad = api.admin.delete("/api/gallery/labels/-x")
    assert bad.status_code == 422 and "invalid label" in bad.json()["detail"]
    bad = api.admin.post("/api/gallery/labels/jamie/rename", json={"new_label": "a/b"})
    assert bad.status_code == 422 and "invalid label" in bad.json()["detail"]


def test_delete_an_enrollment_then_a_label(api: Api) -> None:
    first = enroll(api, "obama_train.jpg", "jamie")
    enroll(api, "obama_probe.jpg", "jamie")
    enroll(api, "biden_train.jpg", "sam")
    r = api.admin.delete(f"/api/gallery/enrollments/{first}")
    assert r.status_code == 200 and r.json()["removed"] == 1 and r.json()["labels"] == {"jamie": 1, "sam": 1}
    r = api.admin.delete("/api/gallery/labels/sam")
    assert r.json()["ok"] is True and r.json()["labels"] == {"jamie": 1}
    assert api.ops.summary.enrollments == 1  # the retained summary follows


def test_rename_and_merge(api: Api) -> None:
    enroll(api, "obama_train.jpg", "jamie")
    enroll(api, "obama_probe.jpg", "james", force=True)  # the same face: refused unless forced
    r = api.admin.post("/api/gallery/labels/jamie/rename", json={"new_label": "Jim"})
    assert r.json()["labels"] == {"Jim": 1, "james": 1}
    r = api.admin.post("/api/gallery/labels/james/rename", json={"new_label": "jim"})  # onto Jim: merged
    assert r.json()["labels"] == {"Jim": 2} and r.json()["removed"] == 1
    matched = api.viewer.post("/api/image/match", files={"File": ("p.jpg", photo("obama_probe.jpg"))}).json()
    assert matched["label"] == "Jim"


def test_merge_two_labels_and_the_overview_that_suggests_it(api: Api) -> None:
    enroll(api, "obama_train.jpg", "jamie")
    enroll(api, "obama_probe.jpg", "james", force=True)
    overview = api.viewer.get("/api/gallery").json()
    assert overview["ok"] and overview["labels"] == {"james": 1, "jamie": 1}
    assert overview["conflicts"]  # one face under two names
    r = api.admin.post("/api/gallery/labels/james/merge", json={"into": "jamie"}).json()
    assert r["ok"] and r["labels"] == {"jamie": 2}
    again = api.admin.post("/api/gallery/labels/james/merge", json={"into": "jamie"}).json()
    assert again["ok"] is False and "no one is enrolled as 'james'" in again["reason"]
    assert api.viewer.get("/api/gallery").json()["conflicts"] == []


def test_not_this_person_from_a_photo(api: Api) -> None:
    enroll(api, "obama_train.jpg", "jamie")
    probe = ("p.jpg", photo("obama_probe.jpg"))
    assert api.viewer.post("/api/image/match", files={"File": probe}).json()["label"] == "jamie"
    r = api.admin.post("/api/gallery/labels/jamie/not", files={"File": probe})
    assert r.status_code == 200 and r.json()["ok"] and r.json()["negatives"] == {"jamie": 1}
    assert api.viewer.post("/api/image/match", files={"File": probe}).json()["matched"] is False
    nobody = api.admin.post("/api/gallery/labels/sam/not", files={"File": probe}).json()
    assert nobody["ok"] is False and "no one is enrolled as 'sam'" in nobody["reason"]
    bad = api.admin.post("/api/gallery/labels/jamie/not", files={"File": ("x.jpg", b"not an image")})
    assert bad.status_code == 422 and "not an image" in bad.json()["detail"]
