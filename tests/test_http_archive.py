"""Events, snapshots, visitors and search over HTTP, on an archive filled by the recognizer itself."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from homesec.contract import SnapshotMeta, to_iso, utc_now
from recognizer_node.pipeline import Recognizer
from tests.http_server import Api, photo, rec, serve

__all__ = ["rec"]

START = utc_now() - timedelta(hours=1)


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def snap(api: Api, name: str, event_id: str, seq: int = 0, camera: str = "door", minutes: int = 0) -> None:
    data = photo(name)
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    meta = SnapshotMeta(
        ts=START + timedelta(minutes=minutes), camera=camera, event_id=event_id, seq=seq, burst=2,
        trigger="pir", width=width, height=height,
    )  # fmt: skip
    api.ops.recognize(meta, data)


@pytest.fixture
def filled(api: Api) -> Api:
    """jamie is enrolled; e1 (door): jamie twice; e2 (gate): a stranger; e3 (door): the stranger again."""
    r = api.admin.post(
        "/api/image/train", files={"File": ("t.jpg", photo("obama_train.jpg"))}, data={"label": "jamie"}
    )
    assert r.json()["ok"]
    snap(api, "obama_probe.jpg", "e1", 0, minutes=0)
    snap(api, "obama_train.jpg", "e1", 1, minutes=1)
    snap(api, "biden_train.jpg", "e2", 0, camera="gate", minutes=10)
    snap(api, "biden_train.jpg", "e3", 0, minutes=20)
    return api


def ids(page: dict[str, object]) -> list[str]:
    return [e["event_id"] for e in page["events"]]  # type: ignore[attr-defined,index]


def test_events_newest_first_filtered_and_paginated(filled: Api) -> None:
    v = filled.viewer
    everything = v.get("/api/events").json()
    assert ids(everything) == ["e3", "e2", "e1"] and everything["total"] == 3
    e1 = everything["events"][2]
    assert e1["snapshots"] == 2 and e1["labels"] == ["jamie"] and e1["verdicts"] == ["known"]
    assert ids(v.get("/api/events", params={"camera": "door"}).json()) == ["e3", "e1"]
    assert ids(v.get("/api/events", params={"verdict": "unknown"}).json()) == ["e3", "e2"]
    assert ids(v.get("/api/events", params={"label": "JAMIE"}).json()) == ["e1"]
    since = to_iso(START + timedelta(minutes=5))
    until = to_iso(START + timedelta(minutes=15))
    assert ids(v.get("/api/events", params={"since": since, "until": until}).json()) == ["e2"]
    first = v.get("/api/events", params={"limit": 2}).json()
    assert ids(first) == ["e3", "e2"] and first["next_offset"] == 2
    rest = v.get("/api/events", params={"limit": 2, "offset": first["next_offset"]}).json()
    assert ids(rest) == ["e1"] and rest["next_offset"] is None


def test_events_of_one_visitor(filled: Api) -> None:
    (stranger,) = filled.viewer.get("/api/events", params={"camera": "gate"}).json()["events"][0]["visitors"]
    page = filled.viewer.get("/api/events", params={"visitor": stranger}).json()
    assert ids(page) == ["e3", "e2"]


def test_bad_filters_are_422(filled: Api) -> None:
    assert filled.viewer.get("/api/events", params={"since": "yesterday"}).status_code == 422
    assert filled.viewer.get("/api/events", params={"since": "2026-01-01T00:00:00"}).status_code == 422
    assert filled.viewer.get("/api/events", params={"verdict": "maybe"}).status_code == 422
    assert filled.viewer.get("/api/events", params={"limit": 0}).status_code == 422


def test_one_event_with_its_faces_and_snapshots(filled: Api) -> None:
    e1 = filled.viewer.get("/api/events/e1").json()
    assert e1["camera"] == "door" and [s["seq"] for s in e1["snapshots"]] == [0, 1]
    (face,) = e1["snapshots"][0]["faces"]
    assert face["label"] == "jamie" and face["similarity"] > 0.363 and e1["snapshots"][0]["kept"]
    clean = filled.viewer.get("/api/events/e1/snapshots/0")
    assert clean.status_code == 200 and clean.content == photo("obama_probe.jpg")
    boxed = filled.viewer.get("/api/events/e1/snapshots/0/annotated")
    assert boxed.headers["content-type"] == "image/jpeg" and boxed.content[:2] == b"\xff\xd8"
    assert boxed.content != clean.content
    assert filled.viewer.get("/api/events/nope").status_code == 404
    assert filled.viewer.get("/api/events/e1/snapshots/7").status_code == 404


def test_visitors_listed_shown_and_named(filled: Api) -> None:
    (listed,) = filled.viewer.get("/api/visitors").json()
    assert listed["faces"] == 2 and listed["events"] == 2 and listed["label"] is None
    one = filled.viewer.get(f"/api/visitors/{listed['visitor']}").json()
    assert [f["event_id"] for f in one["recent"]] == ["e3", "e2"]
    crop = filled.viewer.get(f"/api/visitors/{listed['visitor']}/crop")
    assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"
    face = filled.viewer.get(f"/api/visitors/{listed['visitor']}/faces/{one['recent'][0]['face']}/crop")
    assert face.status_code == 200
    assert (
        filled.viewer.post(f"/api/visitors/{listed['visitor']}/name", json={"label": "sam"}).status_code
        == 403
    )
    named = filled.admin.post(f"/api/visitors/{listed['visitor']}/name", json={"label": "sam"}).json()
    assert named["ok"] and named["enrolled"] == 2 and named["labels"] == {"jamie": 1, "sam": 2}
    assert filled.viewer.get(f"/api/visitors/{listed['visitor']}").json()["label"] == "sam"
    assert filled.viewer.get("/api/visitors/999").status_code == 404
    assert filled.admin.post("/api/visitors/999/name", json={"label": "x"}).status_code == 404


def test_a_dismissed_visitor_is_forgotten_and_a_new_one_starts(filled: Api) -> None:
    (listed,) = filled.viewer.get("/api/visitors").json()
    old = listed["visitor"]
    assert filled.viewer.post(f"/api/visitors/{old}/dismiss").status_code == 403
    r = filled.admin.post(f"/api/visitors/{old}/dismiss")
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["op"] == "dismiss_visitor"
    assert filled.viewer.get("/api/visitors").json() == []
    assert filled.viewer.get(f"/api/visitors/{old}").status_code == 404
    assert filled.admin.post(f"/api/visitors/{old}/dismiss").status_code == 404
    faces = filled.viewer.get("/api/events/e3").json()["snapshots"][0]["faces"]
    assert [f["visitor"] for f in faces] == [None]  # the event keeps its face, ungrouped
    snap(filled, "biden_train.jpg", "e4", 0, minutes=30)
    snap(filled, "biden_train.jpg", "e5", 0, minutes=40)
    (again,) = filled.viewer.get("/api/visitors").json()
    assert again["visitor"] != old and again["events"] == 2


def test_search_finds_the_events_with_the_face(filled: Api) -> None:
    r = filled.viewer.post("/api/search", files={"File": ("q.jpg", photo("biden_train.jpg"))})
    body = r.json()
    assert r.status_code == 200 and body["ok"] is True
    assert sorted(h["event_id"] for h in body["hits"]) == ["e2", "e3"]
    assert all(h["similarity"] > 0.9 for h in body["hits"])
    top = filled.viewer.post(
        "/api/search", files={"File": ("q.jpg", photo("biden_train.jpg"))}, data={"top": "1"}
    )
    assert len(top.json()["hits"]) == 1


def test_without_an_archive_the_archive_routes_say_why(tmp_path: Path, rec: Recognizer) -> None:
    from recognizer_node.settings import ArchiveSettings

    for api in serve(tmp_path, rec, archive=ArchiveSettings(enabled=False)):
        r = api.viewer.get("/api/events")
        assert r.status_code == 404 and "no event archive" in r.json()["detail"]
        assert api.viewer.get("/api/visitors/1").status_code == 404
        search = api.viewer.post("/api/search", files={"File": ("q.jpg", photo("biden_train.jpg"))}).json()
        assert search["ok"] is False and "no event archive" in search["reason"]


def test_enrolling_an_archived_face(filled: Api) -> None:
    r = filled.admin.post("/api/events/e2/snapshots/0/faces/0/enroll", json={"label": "joe"})
    body = r.json()
    assert r.status_code == 200 and body["ok"] and body["enrolled"] == 1, body
    assert body["labels"]["joe"] == 1 and body["enrollment_id"] is not None
    again = filled.admin.post("/api/events/e2/snapshots/0/faces/0/enroll", json={"label": "joseph"}).json()
    assert again["ok"] is False and "looks like joe" in again["reason"]
    assert (
        filled.viewer.post("/api/events/e2/snapshots/0/faces/0/enroll", json={"label": "x"}).status_code
        == 403
    )


def test_not_this_person_for_an_archived_face(filled: Api) -> None:
    r = filled.admin.post("/api/events/e1/snapshots/0/faces/0/not")  # the name it was given: jamie
    assert r.status_code == 200 and r.json()["ok"] and r.json()["negatives"] == {"jamie": 1}
    probe = ("p.jpg", photo("obama_probe.jpg"))
    assert filled.viewer.post("/api/image/match", files={"File": probe}).json()["matched"] is False
    unnamed = filled.admin.post("/api/events/e2/snapshots/0/faces/0/not").json()
    assert unnamed["ok"] is False and "not named" in unnamed["reason"]
    missing = filled.admin.post("/api/events/e1/snapshots/0/faces/5/not").json()
    assert missing["ok"] is False
