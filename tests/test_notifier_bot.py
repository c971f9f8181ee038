"""The Telegram bot, end to end over a real local HTTP server (getUpdates long polling) and LocalBus:
commands, strangers, training from photos, replies and alerts, the enroll button, timeouts."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homesec.bus import Message
from homesec.contract import (
    CaptureCommand,
    EnrollFace,
    GalleryCommand,
    GalleryResult,
    GallerySummary,
    TrainRequest,
    TrainResult,
    parse,
    parse_gallery_command,
)
from homesec.requests import send_answer
from notifier_node.service import reply_topic
from tests.fake_telegram import (
    CHAT,
    Call,
    FakeTelegram,
    jpeg_bytes,
    say,
    serve_fake,
    the_first_alert,
    wait_text,
)
from tests.helpers import LocalBus
from tests.test_notifier_delivery import Harness, make_settings

STRANGER = 666


class Recognizer:
    """Plays the recognizer on the LocalBus: answers training and gallery commands as it does, on the
    result topic and on the request's response topic."""

    def __init__(self, bus: LocalBus, *, silent: bool = False) -> None:
        self.bus, self.silent = bus, silent
        self.train: list[TrainRequest] = []
        self.gallery: list[GalleryCommand] = []
        bus.subscribe(bus.topics.train, self._on_train)
        bus.subscribe(bus.topics.gallery_cmd, self._on_gallery)

    def _on_train(self, msg: Message) -> None:
        req = parse(TrainRequest, msg.payload)
        self.train.append(req)
        if not self.silent:
            result = TrainResult(
                request_id=req.request_id, label=req.label, ok=True, enrollment_id=7, quality=0.9
            )
            send_answer(self.bus, msg, result, self.bus.topics.train_result)

    def _on_gallery(self, msg: Message) -> None:
        cmd = parse_gallery_command(msg.payload)
        self.gallery.append(cmd)
        result = GalleryResult(request_id=cmd.request_id, op=cmd.op, ok=True, removed=2, enrolled=3)
        send_answer(self.bus, msg, result, self.bus.topics.gallery_result)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    yield from serve_fake(STRANGER)


def start(tmp_path: Path, fake: FakeTelegram, **overrides: Any) -> tuple[Harness, Recognizer]:
    bus = LocalBus("notifier/main")
    recognizer = Recognizer(bus)
    return Harness(tmp_path / "data", make_settings(fake.url, **overrides), bus), recognizer


@pytest.fixture
def bot(tmp_path: Path, fake: FakeTelegram) -> Iterator[tuple[Harness, Recognizer]]:
    h, r = start(tmp_path, fake)
    yield h, r
    h.close()


def test_a_strangers_chat_is_refused_and_logged(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    h, _ = bot
    caplog.set_level(logging.WARNING, logger="notifier_node")
    say(fake, "/disarm", chat=STRANGER)
    assert str(STRANGER) in wait_text(fake, "private bot", chat=STRANGER)
    assert h.service.armed().armed is True  # not obeyed
    assert any(str(STRANGER) in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    fake.push(callback_query={"id": "cb9", "data": "enroll:x", "message": fake.message(chat=STRANGER)})
    fake.wait(
        lambda: any(c.fields.get("callback_query_id") == "cb9" for c in fake.ok_calls("answerCallbackQuery"))
    )


def test_arm_and_disarm_flip_the_retained_state(bot: tuple[Harness, Recognizer], fake: FakeTelegram) -> None:
    h, _ = bot
    say(fake, "/disarm")
    wait_text(fake, "Disarmed")
    state = json.loads(h.bus.retained[h.bus.topics.armed].payload)
    assert state["armed"] is False and state["by"] == f"telegram:user{CHAT}"
    h.alert()
    assert fake.ok_calls("sendPhoto") == []
    say(fake, "/arm@homesec_bot")
    wait_text(fake, "Armed: alerts are on")
    assert json.loads(h.bus.retained[h.bus.topics.armed].payload)["armed"] is True


def test_status_labels_and_snapshot(bot: tuple[Harness, Recognizer], fake: FakeTelegram) -> None:
    h, _ = bot
    h.bus.inject(h.bus.topics.available("camera/door"), "online")
    h.bus.inject(h.bus.topics.available("recognizer/main"), "offline")
    h.bus.inject(
        h.bus.topics.gallery, GallerySummary(labels={"alice": 2, "bob": 1}, enrollments=3, model="sface")
    )
    say(fake, "/status")
    status = wait_text(fake, "Armed")
    assert (
        "🟢 camera/door: online" in status
        and "🔴 recognizer/main: offline" in status
        and "2 people" in status
    )
    say(fake, "/labels")
    assert "alice (2 photos)" in wait_text(fake, "Known people")
    say(fake, "/snapshot")
    wait_text(fake, "Capture requested from door")
    (capture,) = h.bus.payloads(h.bus.topics.camera_cmd_capture("door"))
    parse(CaptureCommand, capture)
    say(fake, "/snapshot ../x")
    wait_text(fake, "invalid camera")


def test_forget_publishes_a_gallery_command_and_relays_the_answer(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    _, recognizer = bot
    say(fake, "/forget bob")
    assert "2 enrollments removed" in wait_text(fake, "Forgetting bob")
    assert [(c.op, c.label) for c in recognizer.gallery] == [("delete_label", "bob")]
    say(fake, "/forget ../../etc")
    wait_text(fake, "Usage: /forget")
    assert len(recognizer.gallery) == 1


def test_train_from_a_photo_caption_downloads_the_largest_size(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    _, recognizer = bot
    photo = jpeg_bytes(640, 480)
    say(fake, "", caption="/train Alice Smith", photo=fake.add_photo(photo))
    assert "Enrolled Alice Smith" in wait_text(fake, "Enrolled")
    (req,) = recognizer.train
    assert base64.b64decode(req.image_b64) == photo and req.source == "telegram" and not req.largest
    say(fake, "/train")
    wait_text(fake, "as the caption of a photo")


def test_train_as_a_reply_to_an_alert_enrolls_its_clean_archived_face(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    h, recognizer = bot
    h.alert()
    say(fake, "/train bob", reply_to_message=the_first_alert(fake))
    wait_text(fake, "Enrolled bob")
    (cmd,) = recognizer.gallery  # never the boxed alert photo
    assert isinstance(cmd, EnrollFace)
    assert (cmd.event_id, cmd.seq, cmd.face, cmd.label) == ("ev1", 0, 0, "bob")
    assert recognizer.train == []


def name_prompt(fake: FakeTelegram, callback_id: str) -> Call:
    """Press the Enroll button of the first alert sent; the bot's "Who is this?" prompt, once the bot can
    take the answer (it learns the prompt's message id only when Telegram has answered its send)."""
    markup = json.loads(fake.ok_calls("sendPhoto")[0].fields["reply_markup"])
    data = markup["inline_keyboard"][0][0]["callback_data"]
    press = {"id": callback_id, "data": data, "message": fake.message(chat=CHAT), "from": {"id": CHAT}}
    fake.push(callback_query=press)
    wait_text(fake, "Who is this?")
    say(fake, "/help")  # answered after the prompt's bookkeeping: the bot's sender works in order
    wait_text(fake, "/status")
    return next(c for c in fake.ok_calls("sendMessage") if "Who is this?" in c.fields["text"])


def test_the_enroll_button_asks_for_a_name_and_trains_from_the_alert(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    h, recognizer = bot
    h.alert()
    prompt = name_prompt(fake, "cb1")
    fake.wait(
        lambda: any(c.fields.get("callback_query_id") == "cb1" for c in fake.ok_calls("answerCallbackQuery"))
    )
    assert prompt.fields["reply_markup"]["force_reply"] is True
    say(fake, "Carol", reply_to_message={"message_id": prompt.result["message_id"], "chat": {"id": CHAT}})
    wait_text(fake, "Enrolled Carol")
    (cmd,) = recognizer.gallery  # the archived face the alert showed, not its boxed photo
    assert isinstance(cmd, EnrollFace)
    assert (cmd.event_id, cmd.seq, cmd.face, cmd.label) == ("ev1", 0, 0, "Carol")
    assert recognizer.train == []


def test_naming_a_recurring_visitor_from_the_alert_enrolls_all_their_faces(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    h, recognizer = bot
    h.alert(visitor="7")
    prompt = name_prompt(fake, "cb2")
    say(fake, "Erin", reply_to_message={"message_id": prompt.result["message_id"], "chat": {"id": CHAT}})
    wait_text(fake, "Naming visitor 7 Erin: 3 photos of them enrolled")
    (cmd,) = recognizer.gallery
    assert (cmd.op, cmd.visitor, cmd.label) == ("name_visitor", 7, "Erin")
    assert recognizer.train == []  # no single-photo training: the whole visitor at once


def test_no_answer_from_the_recognizer_times_out_politely(tmp_path: Path, fake: FakeTelegram) -> None:
    h, recognizer = start(tmp_path, fake, reply_timeout_s=0.3)
    recognizer.silent = True
    try:
        say(fake, "", caption="/train dave", photo=fake.add_photo(jpeg_bytes()))
        wait_text(fake, "No answer from the recognizer for training dave")
        late = recognizer.train[0].request_id
        h.bus.inject(  # the answer comes after all: too late, it is dropped
            reply_topic(h.bus),
            TrainResult(request_id=late, label="dave", ok=True),
            correlation_data=late.encode(),
        )
        say(fake, "/help")
        wait_text(fake, "/status")  # the bot speaks in order: a relayed late answer would be here by now
        assert not any("Enrolled" in t for t in fake.texts())
    finally:
        h.close()


def test_a_stuck_alert_send_does_not_block_commands(tmp_path: Path, fake: FakeTelegram) -> None:
    h, _ = start(tmp_path, fake, request_timeout_s=2.5)
    fake.hang_s = 3.0
    fake.fail("sendPhoto", "hang")  # the handler's send waits for its read timeout...
    sender = threading.Thread(target=h.alert)
    try:
        sender.start()
        fake.wait(lambda: not fake.faults["sendPhoto"])  # the photo request is at the server, hanging
        say(fake, "/help")
        wait_text(fake, "/status")  # ...while the bot keeps answering
        assert sender.is_alive()
        sender.join(5)
        fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 1)  # and the alert still goes out, once
    finally:
        sender.join(5)
        h.close()
