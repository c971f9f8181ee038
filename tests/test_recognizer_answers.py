"""Every request to the recognizer gets an answer with the reason, whatever went wrong: hostile JSON,
a full disk, a bad image, a closed or corrupt database."""

from __future__ import annotations

import base64
import errno
import io
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from homesec.config import Config
from homesec.contract import (
    ContractError,
    GalleryResult,
    Payload,
    Role,
    SearchResult,
    TrainRequest,
    TrainResult,
    parse,
    parse_gallery_command,
)
from homesec.remote import RemoteClient
from homesec.requests import serve
from recognizer_node.gallery import Gallery
from recognizer_node.operations import storage_problem
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.conftest import FACES
from tests.helpers import LocalBus
from tests.mqtt_helpers import Broker

REPLY = "homesec/reply/admin/c1"
DEEP = 100_000


def make(
    tmp_path: Path, rec: Recognizer, gallery: Gallery | None = None
) -> tuple[RecognizerService, LocalBus]:
    bus = LocalBus("recognizer/main")
    service = RecognizerService(
        RecognizerSettings(models_dir=rec.models_dir), tmp_path, bus, recognizer=rec, gallery=gallery
    )
    service.start()
    bus.start()
    return service, bus


def ask(bus: LocalBus, topic: str, payload: bytes, request_id: str, **kw: Any) -> None:
    bus.inject(topic, payload, response_topic=REPLY, correlation_data=request_id.encode(), **kw)


def photo_b64(name: str = "obama_train.jpg") -> str:
    return base64.b64encode((FACES / name).read_bytes()).decode()


class FullDiskGallery(Gallery):
    """A gallery whose disk is full: every write fails as it would on a real full disk."""

    def add_once(self, *args: Any, **kwargs: Any) -> tuple[int, bool]:  # `add` goes through it too
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))


# ------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("text", ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP])
def test_deeply_nested_json_is_refused_as_a_contract_error(text: str) -> None:
    with pytest.raises(ContractError, match="nested too deeply"):
        parse(TrainRequest, text)
    with pytest.raises(ContractError, match="nested too deeply"):
        parse_gallery_command(text)


def test_a_number_too_long_to_convert_is_refused_as_a_contract_error() -> None:
    with pytest.raises(ContractError, match="not JSON"):
        parse(TrainRequest, '{"v": ' + "1" * 5000 + "}")  # Python refuses ints over 4300 digits


def test_deeply_nested_training_json_is_answered(tmp_path: Path, rec: Recognizer) -> None:
    _, bus = make(tmp_path, rec)
    body = '{"v": 1, "label": "x", "image_b64": ' + "[" * DEEP + "]" * DEEP + "}"
    ask(bus, bus.topics.train, body.encode(), "deep-1")
    (answer,) = [parse(TrainResult, p) for p in bus.payloads(bus.topics.train_result)]
    assert not answer.ok and answer.request_id == "deep-1" and "nested too deeply" in (answer.reason or "")
    assert len(bus.payloads(REPLY)) == 1
    assert [e.error for e in bus.errors] == ["bad_payload"]


# ------------------------------------------------------------------------------------- training


def test_training_on_a_full_disk_is_refused_with_the_reason(tmp_path: Path, rec: Recognizer) -> None:
    _, bus = make(tmp_path, rec, gallery=FullDiskGallery(tmp_path / "gallery.sqlite3"))
    req = TrainRequest(label="obama", image_b64=photo_b64())
    ask(bus, bus.topics.train, req.to_json(), "full-1")
    (answer,) = [parse(TrainResult, p) for p in bus.payloads(REPLY)]
    assert not answer.ok and answer.request_id == "full-1" and answer.label == "obama"
    assert (answer.reason or "").startswith("refused: disk full")


# --------------------------------------------------------------------------------------- search


def test_search_with_a_bad_image_is_answered(tmp_path: Path, rec: Recognizer) -> None:
    _, bus = make(tmp_path, rec)
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, format="PNG")
    truncated = out.getvalue()[:40]
    for n, image in enumerate([b"", b"not an image", truncated]):
        ask(bus, bus.topics.search_cmd, image, f"s{n}", user_properties={"meta": '{"v": 1}'})
    answers = [parse(SearchResult, p) for p in bus.payloads(REPLY)]
    assert [(a.request_id, a.ok) for a in answers] == [("s0", False), ("s1", False), ("s2", False)]
    assert "empty image" in (answers[0].reason or "") and "not an image" in (answers[1].reason or "")
    assert "truncated" in (answers[2].reason or "") or "not an image" in (answers[2].reason or "")


# -------------------------------------------------------------------------------------- gallery


def test_gallery_commands_on_a_closed_database_are_answered(tmp_path: Path, rec: Recognizer) -> None:
    service, bus = make(tmp_path, rec)
    service.ops.gallery.close()
    for n, op in enumerate(['{"v": 1, "op": "list"}', '{"v": 1, "op": "delete_label", "label": "x"}']):
        ask(bus, bus.topics.gallery_cmd, op.encode(), f"g{n}")
    answers = [parse(GalleryResult, p) for p in bus.payloads(REPLY)]
    assert [(a.request_id, a.ok) for a in answers] == [("g0", False), ("g1", False)]
    assert all((a.reason or "").startswith("refused: the gallery database") for a in answers)


def test_gallery_commands_on_a_corrupt_database_are_answered(tmp_path: Path, rec: Recognizer) -> None:
    service, bus = make(tmp_path, rec)
    gallery_file = service.ops.gallery.path
    service.ops.gallery.close()
    gallery_file.write_bytes(b"SQLite format 3\x00" + b"\xde\xad" * 4096)
    with pytest.raises(sqlite3.DatabaseError):
        Gallery(gallery_file)  # it does not even open; a gallery that breaks later answers as below
    broken = Gallery(tmp_path / "other.sqlite3")
    broken._db.close()
    broken._db = sqlite3.connect(gallery_file, check_same_thread=False)
    service.ops.gallery = broken
    ask(bus, bus.topics.gallery_cmd, b'{"v": 1, "op": "list"}', "c0")
    (answer,) = [parse(GalleryResult, p) for p in bus.payloads(REPLY)]
    assert not answer.ok and (answer.reason or "").startswith("refused: the gallery database")


def test_a_refusal_stays_small_whatever_the_request() -> None:
    many_fields = "{" + ",".join(f'"k{i}": 1' for i in range(100_000)) + "}"
    with pytest.raises(ContractError) as refused:
        parse(TrainRequest, many_fields)
    assert len(str(refused.value)) < 1000 and str(refused.value).endswith("more")


@pytest.mark.integration
def test_hostile_requests_are_answered_over_the_broker(
    fresh_broker: Broker, rec: Recognizer, tmp_path: Path
) -> None:
    """As the admin's CLI meets them, through the real mosquitto: each gets an answer, none a timeout."""
    bus = fresh_broker.bus(Role.RECOGNIZER, "recognizer/main")
    gallery = FullDiskGallery(tmp_path / "gallery.sqlite3")
    RecognizerService(
        RecognizerSettings(models_dir=rec.models_dir), tmp_path, bus, recognizer=rec, gallery=gallery
    )
    bus.start()
    admin_config = Config(data_dir=tmp_path, mqtt=fresh_broker.settings(Role.ADMIN))
    try:
        assert bus.wait_connected(10)
        t = bus.topics
        nested = ('{"v": 1, "label": "x", "image_b64": ' + "[" * DEEP + "]" * DEEP + "}").encode()
        full = TrainRequest(label="obama", image_b64=photo_b64()).to_json()
        with RemoteClient(admin_config) as admin:
            deep = admin.request(t.train, nested, TrainResult, "deep", timeout=20)
            no_space = admin.request(t.train, full, TrainResult, "full", timeout=20)
            listed = admin.request(
                t.gallery_cmd, b'{"v": 1, "op": "list"}', GalleryResult, "list", timeout=20
            )
        assert not deep.ok and "nested too deeply" in (deep.reason or "")
        assert not no_space.ok and (no_space.reason or "").startswith("refused: disk full")
        assert listed.ok and listed.request_id == "list"  # reads still work on a full disk
    finally:
        bus.stop()


# --------------------------------------------------------------------------------------- serve()


class Ask(Payload):
    request_id: str


class Told(Payload):
    request_id: str | None
    ok: bool
    reason: str | None = None


def test_a_request_failing_for_a_transient_cause_is_answered_once_not_retried() -> None:
    """The requester has its refusal: handling the request again later would do it behind its back."""
    bus = LocalBus("test/server")
    calls: list[str] = []

    def handle(req: Ask) -> Told:
        calls.append(req.request_id)
        raise OSError(errno.ENOSPC, "No space left on device")

    serve(bus, "homesec/test/ask", lambda m: parse(Ask, m.payload), handle,
          refuse=lambda rid, reason: Told(request_id=rid, ok=False, reason=reason))  # fmt: skip
    bus.inject("homesec/test/ask", Ask(request_id="a1"), response_topic=REPLY, correlation_data=b"a1")
    (answer,) = [parse(Told, p) for p in bus.payloads(REPLY)]
    assert not answer.ok and "No space left" in (answer.reason or "")
    assert calls == ["a1"] and [e.error for e in bus.errors] == ["handler_failed"]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (sqlite3.OperationalError("database or disk is full"), "refused: disk full, the gallery"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "refused: disk full, the gallery"),
        (
            sqlite3.DatabaseError("database disk image is malformed"),
            "refused: the gallery database is unusable",
        ),
        (OSError(errno.EIO, "Input/output error"), "refused: the gallery storage failed"),
    ],
)
def test_storage_failures_are_named_for_the_requester(exc: OSError | sqlite3.Error, reason: str) -> None:
    assert storage_problem("gallery", exc).startswith(reason)
