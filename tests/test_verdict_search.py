"""A search of the archive for an archived face (event id, seq, face index): what `/search` as a reply
to an alert asks for, so the clean face is searched for rather than the alert's boxed photo of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homesec.contract import ContractError, FaceSearch, SearchResult, decode_search, parse
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from tests.conftest import FACES, open_ops
from tests.helpers import LocalBus
from tests.test_recognizer_identity import meta


def test_an_archived_face_finds_the_events_of_that_person(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        for event, photo in (("e1", "rose_a.jpg"), ("e2", "rose_b.jpg"), ("e3", "obama_probe.jpg")):
            ops.recognize(meta(event), (FACES / photo).read_bytes())
        found = ops.search(FaceSearch(request_id="s1", event_id="e1", seq=0, face=0))
        assert found.ok, found.reason
        assert [h.event_id for h in found.hits] == ["e1", "e2"]  # herself, then her other visit
        assert found.hits[0].similarity > 0.99  # the archived embedding itself
        photo = ops.search(FaceSearch(request_id="s2", image=(FACES / "rose_a.jpg").read_bytes()))
        assert [h.event_id for h in photo.hits] == ["e1", "e2"]  # as a search with the clean photo
        gone = ops.search(FaceSearch(request_id="s3", event_id="e9", seq=0, face=0))
        assert not gone.ok and "no face 0 in archived snapshot e9/0" in (gone.reason or "")
    finally:
        ops.close()


def test_the_json_form_names_an_archived_face_or_a_photo_never_both() -> None:
    req = decode_search(b'{"v": 1, "event_id": "e1", "seq": 2, "face": 1, "top": 5}', {}, "c1")
    assert (req.request_id, req.event_id, req.seq, req.face, req.image, req.top) == (
        "c1",
        "e1",
        2,
        1,
        None,
        5,
    )
    with pytest.raises(ContractError, match="not both"):
        decode_search(b'{"v": 1, "event_id": "e1", "seq": 0, "face": 0, "image_b64": "aGk="}', {}, None)
    with pytest.raises(ContractError, match="archived face"):
        decode_search(b'{"v": 1, "event_id": "e1", "seq": 0}', {}, None)


def test_over_the_bus(tmp_path: Path, rec: Recognizer) -> None:
    bus = LocalBus("recognizer/main")
    service = RecognizerService(rec.settings, tmp_path, bus, recognizer=rec)
    service.start()
    bus.start()
    try:
        service.ops.recognize(meta("e1"), (FACES / "rose_a.jpg").read_bytes())
        ask = {"v": 1, "request_id": "s1", "event_id": "e1", "seq": 0, "face": 0}
        bus.inject(bus.topics.search_cmd, json.dumps(ask).encode())
        (answer,) = [parse(SearchResult, p) for p in bus.payloads(bus.topics.search_result)]
        assert answer.ok and [h.event_id for h in answer.hits] == ["e1"]
    finally:
        service.stop()
