"""'Not X' from Telegram: the alert's button for each face it named, and `/not <name>` on a photo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.contract import Alert, Face, NotLabel, Verdict
from notifier_node.caption import build_caption
from tests.fake_telegram import CHAT, FakeTelegram, jpeg_bytes, say, serve_fake, the_first_alert, wait_text
from tests.test_notifier_bot import STRANGER, Harness, Recognizer, start

NAMED = Face(box=(1, 1, 20, 20), score=0.9, label="alice", similarity=0.41, closest="alice")
UNNAMED = Face(box=(30, 1, 50, 20), score=0.9, label=None, similarity=0.2, closest="bob")


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    yield from serve_fake(STRANGER)


@pytest.fixture
def bot(tmp_path: Path, fake: FakeTelegram) -> Iterator[tuple[Harness, Recognizer]]:
    h, r = start(tmp_path, fake)
    yield h, r
    h.close()


def test_an_alert_that_named_someone_offers_not_x_and_the_button_corrects_the_archived_face(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    h, recognizer = bot
    meta = Alert(
        camera="door", event_id="5f0c8e1a9b2d4c3e8f7a6b5c4d3e2f1a", seq=2, verdict=Verdict.UNKNOWN,
        faces=[UNNAMED, NAMED], snapshot_ts="2024-07-01T18:30:05Z",
    )  # fmt: skip
    h.inject_alert(jpeg_bytes(), meta)
    markup = json.loads(fake.ok_calls("sendPhoto")[0].fields["reply_markup"])
    buttons = [b for row in markup["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["👤 Enroll this person", "🙅 Not alice"]
    press = {"id": "cb1", "data": buttons[1]["callback_data"], "message": fake.message(chat=CHAT)}
    fake.push(callback_query={**press, "from": {"id": CHAT}})
    wait_text(fake, "Correcting the name: noted")
    (cmd,) = recognizer.gallery
    assert isinstance(cmd, NotLabel)
    assert (cmd.event_id, cmd.seq, cmd.face, cmd.label) == (meta.event_id, 2, 1, None)


def test_an_alert_that_named_no_one_has_no_not_button(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    h, _ = bot
    h.alert()
    markup = json.loads(fake.ok_calls("sendPhoto")[0].fields["reply_markup"])
    assert [b["text"] for row in markup["inline_keyboard"] for b in row] == ["👤 Enroll this person"]


def test_not_name_on_a_photo_sends_it_as_a_negative(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    _, recognizer = bot
    photo = jpeg_bytes(640, 480)
    say(fake, "", caption="/not alice", photo=fake.add_photo(photo))
    wait_text(fake, "Not alice: noted")
    (cmd,) = recognizer.gallery
    assert isinstance(cmd, NotLabel) and cmd.label == "alice" and cmd.image == photo
    say(fake, "/not")
    wait_text(fake, "Usage: /not <name>")


def test_an_ambiguous_face_says_between_whom_in_the_caption() -> None:
    face = UNNAMED.model_copy(update={"similarity": 0.78, "closest": "owner", "ambiguous_with": "obama"})
    alert = Alert(
        camera="door", event_id="e1", seq=0, verdict=Verdict.UNKNOWN, faces=[face],
        snapshot_ts="2024-07-01T18:30:05Z",
    )  # fmt: skip
    assert "too close to call between owner and obama (0.78)" in build_caption(alert)


def test_not_name_as_a_reply_to_an_alert_corrects_its_archived_face_not_the_boxed_photo(
    bot: tuple[Harness, Recognizer], fake: FakeTelegram
) -> None:
    h, recognizer = bot
    meta = Alert(
        camera="door", event_id="ev-not", seq=2, verdict=Verdict.UNKNOWN, faces=[UNNAMED, NAMED],
        snapshot_ts="2024-07-01T18:30:05Z",
    )  # fmt: skip
    h.inject_alert(jpeg_bytes(), meta)
    alert_msg = the_first_alert(fake)
    say(fake, "/not alice", reply_to_message=alert_msg)  # the face it named alice
    wait_text(fake, "Not alice: noted")
    say(fake, "/not bob", reply_to_message=alert_msg)  # a name it gave no face: its unknown face
    wait_text(fake, "Not bob: noted")
    first, second = recognizer.gallery
    assert isinstance(first, NotLabel) and isinstance(second, NotLabel)
    assert (first.event_id, first.seq, first.face, first.label, first.image) == (
        "ev-not",
        2,
        1,
        "alice",
        None,
    )
    assert (second.event_id, second.seq, second.face, second.label, second.image) == (
        "ev-not",
        2,
        0,
        "bob",
        None,
    )
