"""The recognizer service with its archive: visitor ids in results and alerts, search and naming over
the (in-memory) bus, with the real models."""

from __future__ import annotations

import base64
from pathlib import Path

from homesec.contract import (
    Alert,
    GalleryResult,
    GallerySummary,
    NameVisitor,
    RecognitionResult,
    SearchRequest,
    SearchResult,
    SnapshotMeta,
    meta_property,
    parse,
    parse_meta,
)
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import ArchiveSettings, RecognizerSettings
from tests.conftest import FACES
from tests.face_frames import snapshot_image
from tests.helpers import LocalBus

REPLY = "homesec/reply/notifier/n1"


def make(
    tmp_path: Path, rec: Recognizer, archive: ArchiveSettings | None = None
) -> tuple[RecognizerService, LocalBus]:
    settings = RecognizerSettings(models_dir=rec.models_dir, archive=archive or ArchiveSettings())
    bus = LocalBus("recognizer/main")
    service = RecognizerService(settings, tmp_path, bus, recognizer=rec)
    service.start()
    bus.start()
    return service, bus


def snapshot(bus: LocalBus, name: str, event: str, seq: int = 0, *, framed: bool = False) -> None:
    """`name` as a snapshot; `framed`: its face small in a wide frame, which only the motion box finds."""
    data, (width, height), box = snapshot_image(name, framed)
    meta = SnapshotMeta(
        camera="door", event_id=event, seq=seq, burst=2, trigger="pir", width=width, height=height,
        motion_box=box,
    )  # fmt: skip
    bus.inject(bus.topics.snapshot("door"), data, user_properties=meta_property(meta))


def search(bus: LocalBus, name: str, **kw: object) -> SearchRequest:
    image_b64 = base64.b64encode((FACES / name).read_bytes()).decode()
    req = SearchRequest(request_id="c-42", image_b64=image_b64, **kw)
    # as the Requester sends it: the correlation data is the request id
    bus.inject(bus.topics.search_cmd, req, response_topic=REPLY, correlation_data=b"c-42")
    return req


def test_results_and_alerts_carry_visitor_ids_and_weekly_sightings(tmp_path: Path, rec: Recognizer) -> None:
    service, bus = make(tmp_path, rec)
    snapshot(bus, "obama_train.jpg", "e1")
    snapshot(bus, "obama_probe.jpg", "e2")
    snapshot(bus, "biden_train.jpg", "e3")
    results = [parse(RecognitionResult, p) for p in bus.payloads(bus.topics.result("door"))]
    (a,), (b,), (c,) = (r.faces for r in results)
    assert a.visitor is not None and a.visitor == b.visitor != c.visitor
    assert (a.visitor_seen_week, b.visitor_seen_week) == (1, 2)
    alerts = [
        parse_meta(Alert, m.user_properties) for m in bus.published if m.topic == bus.topics.alert("door")
    ]
    assert [al.faces[0].visitor for al in alerts] == [a.visitor, b.visitor, c.visitor]
    assert alerts[1].faces[0].visitor_seen_week == 2
    assert service.history is not None and service.history.archive.count() == (3, 3)
    service.stop()


def test_search_over_the_bus_answers_on_both_topics(tmp_path: Path, rec: Recognizer) -> None:
    _, bus = make(tmp_path, rec)
    snapshot(bus, "obama_train.jpg", "e1")
    snapshot(bus, "stranger.png", "e2")
    snapshot(bus, "two_faces.jpg", "e3")
    req = search(bus, "obama_probe.jpg")
    (result,) = [parse(SearchResult, p) for p in bus.payloads(bus.topics.search_result)]
    assert result.ok and result.request_id == req.request_id
    assert sorted(h.event_id for h in result.hits) == ["e1", "e3"]
    assert all(h.camera == "door" and h.similarity >= 0.363 for h in result.hits)
    snap = result.hits[0].snapshot
    assert snap is not None and snap.startswith("archive/") and (tmp_path / snap).is_file()
    (reply,) = [m for m in bus.published if m.topic == REPLY]
    assert reply.correlation_data == b"c-42" and parse(SearchResult, reply.payload) == result
    search(bus, "obama_probe.jpg", top=1, threshold=0.99)  # nothing that close but itself
    assert parse(SearchResult, bus.payloads(bus.topics.search_result)[-1]).hits == []


def test_a_face_only_the_motion_box_finds_is_archived_with_a_visitor_id_and_found(
    tmp_path: Path, rec: Recognizer
) -> None:
    _, bus = make(tmp_path, rec)
    snapshot(bus, "obama_train.jpg", "e1")
    snapshot(bus, "obama_probe.jpg", "e2", framed=True)
    snapshot(bus, "stranger.png", "e3", framed=True)
    first, small, stranger = (parse(RecognitionResult, p) for p in bus.payloads(bus.topics.result("door")))
    assert "detect_roi" not in first.timings_ms
    assert small.timings_ms["detect_roi"] > 0 and stranger.timings_ms["detect_roi"] > 0
    assert small.faces[0].visitor is not None and small.faces[0].visitor == first.faces[0].visitor
    assert stranger.faces[0].visitor not in (None, first.faces[0].visitor)
    search(bus, "obama_probe.jpg")
    (result,) = [parse(SearchResult, p) for p in bus.payloads(bus.topics.search_result)]
    assert result.ok and sorted(h.event_id for h in result.hits) == ["e1", "e2"]


def test_a_search_without_a_face_or_without_an_archive_is_refused_with_a_reason(
    tmp_path: Path, rec: Recognizer
) -> None:
    _, bus = make(tmp_path / "on", rec)
    bus.inject(bus.topics.search_cmd, SearchRequest(image_b64="!!!"))
    bad = SearchRequest(image_b64=base64.b64encode(b"\xff\xd8 not a jpeg").decode())
    bus.inject(bus.topics.search_cmd, bad)
    not_b64, not_image = (parse(SearchResult, p) for p in bus.payloads(bus.topics.search_result))
    assert not not_b64.ok and "base64" in (not_b64.reason or "")
    assert not not_image.ok and "image" in (not_image.reason or "")
    bus.inject(bus.topics.search_cmd, b"{not json")
    assert bus.errors[-1].error == "bad_payload"
    _, off = make(tmp_path / "off", rec, ArchiveSettings(enabled=False))
    search(off, "obama_probe.jpg")
    (refused,) = [parse(SearchResult, p) for p in off.payloads(off.topics.search_result)]
    assert not refused.ok and "no event archive" in (refused.reason or "")
    snapshot(off, "stranger.png", "e1")  # without an archive: no visitor ids, still a result
    (result,) = [parse(RecognitionResult, p) for p in off.payloads(off.topics.result("door"))]
    assert result.faces[0].visitor is None
    assert not (tmp_path / "off" / "archive").exists()


def test_naming_a_visitor_over_the_bus_enrolls_it(tmp_path: Path, rec: Recognizer) -> None:
    _, bus = make(tmp_path, rec)
    snapshot(bus, "obama_train.jpg", "e1")
    visitor = parse(RecognitionResult, bus.payloads(bus.topics.result("door"))[0]).faces[0].visitor
    assert visitor is not None
    cmd = NameVisitor(visitor=int(visitor), label="obama")
    bus.inject(bus.topics.gallery_cmd, cmd)
    (answer,) = [parse(GalleryResult, p) for p in bus.payloads(bus.topics.gallery_result)]
    assert answer.ok and answer.enrolled == 1 and answer.labels == {"obama": 1}
    assert parse(GallerySummary, bus.retained[bus.topics.gallery].payload).labels == {"obama": 1}
    snapshot(bus, "obama_probe.jpg", "e2")
    later = parse(RecognitionResult, bus.payloads(bus.topics.result("door"))[-1])
    assert later.verdict == "known" and later.faces[0].label == "obama" and later.faces[0].visitor is None
    bus.inject(bus.topics.gallery_cmd, b'{"v": 1, "op": "name_visitor", "label": "obama"}')  # no visitor id
    refusal = parse(GalleryResult, bus.payloads(bus.topics.gallery_result)[-1])
    assert not refusal.ok and "needs 'visitor'" in (refusal.reason or "")  # answered, not left waiting


def test_a_broken_archive_never_blocks_the_result(tmp_path: Path, rec: Recognizer) -> None:
    service, bus = make(tmp_path, rec)
    assert service.history is not None
    service.history.archive.close()  # every archive call now fails
    snapshot(bus, "stranger.png", "e1")
    (result,) = [parse(RecognitionResult, p) for p in bus.payloads(bus.topics.result("door"))]
    assert result.verdict == "unknown" and result.faces[0].visitor is None
    assert len(bus.payloads(bus.topics.alert("door"))) == 1


def test_an_unusable_archive_directory_does_not_stop_the_recognizer(tmp_path: Path, rec: Recognizer) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the archive directory should be")
    service, bus = make(tmp_path, rec, ArchiveSettings(dir=blocker))
    assert service.history is None
    snapshot(bus, "stranger.png", "e1")
    (result,) = [parse(RecognitionResult, p) for p in bus.payloads(bus.topics.result("door"))]
    assert result.verdict == "unknown" and len(bus.payloads(bus.topics.alert("door"))) == 1
