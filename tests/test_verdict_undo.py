""" "Not X" can be taken back: the answer names the negative it kept (`negative_id`), `undo_not` forgets
it (over MQTT, and `DELETE /api/gallery/negatives/{id}`), and the bot's answer to a "not X" offers an
"Undo" button that does so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.bus import Message
from homesec.contract import (
    Alert,
    Face,
    GalleryResult,
    NotLabel,
    UndoNot,
    Verdict,
    parse_gallery_command,
)
from homesec.requests import send_answer
from recognizer_node.pipeline import Recognizer
from tests.fake_telegram import CHAT, FakeTelegram, jpeg_bytes, serve_fake, wait_text
from tests.helpers import LocalBus
from tests.http_server import Api, photo, serve
from tests.test_notifier_bot import STRANGER, Harness
from tests.test_notifier_bot import Recognizer as StandIn
from tests.test_notifier_delivery import make_settings
from tests.test_recognizer_identity import open_ops, sighting, training

NEGATIVE = 41  # the negative the stand-in says it kept


def test_a_not_x_taken_back_lets_the_face_be_named_x_again(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec, threshold=0.15)  # lowered: rose passes for obama
    try:
        assert ops.train(training("obama_train.jpg", "obama")).ok
        assert ops.train(training("obama_probe.jpg", "obama")).ok
        assert sighting(ops, "rose_a.jpg", "e1") == ("obama", Verdict.KNOWN)  # wrongly
        said = ops.gallery_command(NotLabel(request_id="n1", label="obama", event_id="e1", seq=0, face=0))
        assert said.ok and said.negative_id is not None and said.negatives == {"obama": 1}
        again = ops.gallery_command(NotLabel(request_id="n2", label="obama", event_id="e1", seq=0, face=0))
        assert again.negative_id == said.negative_id  # said twice: the same negative
        assert sighting(ops, "rose_a.jpg", "e2") == (None, Verdict.UNKNOWN)
        undone = ops.gallery_command(UndoNot(request_id="u1", negative_id=said.negative_id))
        assert undone.ok and undone.op == "undo_not" and undone.negatives == {}
        assert sighting(ops, "rose_a.jpg", "e3") == ("obama", Verdict.KNOWN)  # as before the "not"
        twice = ops.gallery_command(UndoNot(request_id="u2", negative_id=said.negative_id))
        assert not twice.ok and f"no negative {said.negative_id}" in (twice.reason or "")
    finally:
        ops.close()


def test_undo_not_on_the_wire() -> None:
    cmd = parse_gallery_command(b'{"v": 1, "request_id": "u1", "op": "undo_not", "negative_id": 3}')
    assert isinstance(cmd, UndoNot) and cmd.negative_id == 3
    with pytest.raises(Exception, match="negative_id"):
        parse_gallery_command(b'{"v": 1, "op": "undo_not", "negative_id": 0}')


def test_the_http_api_takes_a_not_x_back(tmp_path: Path, rec: Recognizer) -> None:
    for api in serve(tmp_path, rec):
        _http_undo(api)


def _http_undo(api: Api) -> None:
    r = api.admin.post(
        "/api/image/train", files={"File": ("t.jpg", photo("obama_train.jpg"))}, data={"label": "jamie"}
    )
    assert r.json()["ok"], r.text
    probe = ("p.jpg", photo("obama_probe.jpg"))
    said = api.admin.post("/api/gallery/labels/jamie/not", files={"File": probe}).json()
    assert said["ok"] and isinstance(said["negative_id"], int)
    assert api.viewer.post("/api/image/match", files={"File": probe}).json()["matched"] is False
    assert api.viewer.delete(f"/api/gallery/negatives/{said['negative_id']}").status_code == 403
    undone = api.admin.delete(f"/api/gallery/negatives/{said['negative_id']}")
    assert undone.status_code == 200 and undone.json()["negatives"] == {}
    assert api.viewer.post("/api/image/match", files={"File": probe}).json()["label"] == "jamie"
    gone = api.admin.delete(f"/api/gallery/negatives/{said['negative_id']}")
    assert gone.status_code == 404 and "no negative" in gone.json()["detail"]


# ------------------------------------------------------------------------------------------ the bot


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    yield from serve_fake(STRANGER)


class Negatives(StandIn):
    """The stand-in recognizer, answering a "not X" with the negative it kept, as the recognizer does."""

    def _on_gallery(self, msg: Message) -> None:
        cmd = parse_gallery_command(msg.payload)
        self.gallery.append(cmd)
        kept = NEGATIVE if isinstance(cmd, NotLabel | UndoNot) else None
        result = GalleryResult(request_id=cmd.request_id, op=cmd.op, ok=True, negative_id=kept)
        send_answer(self.bus, msg, result, self.bus.topics.gallery_result)


@pytest.fixture
def bot(tmp_path: Path, fake: FakeTelegram) -> Iterator[tuple[Harness, StandIn]]:
    bus = LocalBus("notifier/main")
    recognizer = Negatives(bus)
    h = Harness(tmp_path / "data", make_settings(fake.url), bus)
    yield h, recognizer
    h.close()


def test_the_answer_to_not_x_offers_undo_and_the_button_takes_it_back(
    bot: tuple[Harness, StandIn], fake: FakeTelegram
) -> None:
    h, recognizer = bot
    named = Face(box=(1, 1, 20, 20), score=0.9, label="alice", similarity=0.41, closest="alice")
    meta = Alert(
        camera="door", event_id="5f0c8e1a9b2d4c3e8f7a6b5c4d3e2f1a", seq=2, verdict=Verdict.UNKNOWN,
        faces=[named], snapshot_ts="2024-07-01T18:30:05Z",
    )  # fmt: skip
    h.inject_alert(jpeg_bytes(), meta)
    markup = json.loads(fake.ok_calls("sendPhoto")[0].fields["reply_markup"])
    (not_alice,) = [b for row in markup["inline_keyboard"] for b in row if b["text"] == "🙅 Not alice"]
    fake.push(callback_query={"id": "cb1", "data": not_alice["callback_data"], "from": {"id": CHAT},
                              "message": fake.message(chat=CHAT)})  # fmt: skip
    wait_text(fake, "Correcting the name: noted")
    answer = next(c for c in fake.ok_calls("sendMessage") if "Correcting the name" in c.fields["text"])
    (undo,) = [b for row in answer.fields["reply_markup"]["inline_keyboard"] for b in row]
    assert undo["text"] == "↩️ Undo" and undo["callback_data"] == f"undo_not:{NEGATIVE}"
    fake.push(callback_query={"id": "cb2", "data": undo["callback_data"], "from": {"id": CHAT},
                              "message": fake.message(chat=CHAT)})  # fmt: skip
    wait_text(fake, "Undoing the correction: taken back")
    last = recognizer.gallery[-1]
    assert isinstance(last, UndoNot) and last.negative_id == NEGATIVE
    undone = next(c for c in fake.ok_calls("sendMessage") if "taken back" in c.fields["text"])
    assert "reply_markup" not in undone.fields  # nothing to undo about an undo
