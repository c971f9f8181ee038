"""One alert per visit: later frames of the visit edit the caption of the photo already sent (or, in
the outbox, add a correction beside it) instead of sending another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.contract import Alert, Face, RecognitionResult, Verdict, VisitState
from tests.fake_telegram import CHAT, FakeTelegram, jpeg_bytes, serve_fake
from tests.helpers import wait_until
from tests.test_notifier_delivery import Harness, make_settings

STRANGER = Face(box=(1, 1, 20, 20), score=0.9, label=None, similarity=0.41, closest="owner")
SECOND = Face(box=(40, 1, 60, 20), score=0.9, label=None, similarity=0.1, closest="owner")
OWNER = Face(box=(2, 1, 21, 20), score=0.9, label="owner", similarity=0.78, closest="owner")


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    yield from serve_fake()


@pytest.fixture
def harness(tmp_path: Path, fake: FakeTelegram) -> Iterator[Harness]:
    h = Harness(tmp_path / "data", make_settings(fake.url, cooldown_s=60))
    yield h
    h.close()


def visit_alert(seq: int = 0, revision: int = 0, faces: list[Face] | None = None) -> Alert:
    return Alert(
        camera="door", event_id="ev1", seq=seq, verdict=Verdict.UNKNOWN, faces=faces or [STRANGER],
        snapshot_ts="2024-07-01T18:30:05Z", frames=seq + 1, revision=revision,
    )  # fmt: skip


def named_later(h: Harness, seq: int = 1, revision: int = 1) -> None:
    """The recognizer's result for a later frame of the visit, which names the stranger."""
    visit = VisitState(verdict=Verdict.KNOWN, frames=seq + 1, decided=True, revision=revision)
    result = RecognitionResult(
        camera="door", event_id="ev1", seq=seq, verdict=Verdict.KNOWN, faces=[OWNER],
        timings_ms={}, model="m", node="recognizer/main", visit=visit,
    )  # fmt: skip
    h.bus.inject(h.bus.topics.result("door"), result)


def edits(fake: FakeTelegram) -> list[dict[str, object]]:
    return [c.fields for c in fake.ok_calls("editMessageCaption")]


def test_a_later_frame_that_names_the_stranger_corrects_the_alert_once(
    harness: Harness, fake: FakeTelegram
) -> None:
    harness.inject_alert(jpeg_bytes(), visit_alert())
    (sent,) = fake.ok_calls("sendPhoto")
    named_later(harness)
    fake.wait(lambda: len(edits(fake)) == 1)
    (edit,) = edits(fake)
    assert (edit["chat_id"], edit["message_id"]) == (CHAT, sent.result["message_id"])
    caption = str(edit["caption"])
    assert caption.startswith("✅ It was owner (0.78) — no stranger")
    assert "at door" in caption
    buttons = [b["text"] for row in edit["reply_markup"]["inline_keyboard"] for b in row]  # type: ignore[index]
    assert buttons == ["🙅 Not owner"]  # no "Enroll this person" for someone already known
    named_later(harness)  # the broker delivers it again
    harness.inject_alert(jpeg_bytes(), visit_alert())  # and the first alert too
    wait_until(lambda: not harness.service.deliverer.busy, 5)
    assert len(edits(fake)) == 1 and len(fake.ok_calls("sendPhoto")) == 1


def test_a_new_unknown_face_in_the_visit_edits_the_caption_rather_than_sending_a_photo(
    harness: Harness, fake: FakeTelegram
) -> None:
    harness.inject_alert(jpeg_bytes(), visit_alert())
    harness.inject_alert(
        jpeg_bytes(color=(1, 2, 3)), visit_alert(seq=2, revision=1, faces=[STRANGER, SECOND])
    )
    # the revision shows another frame (its best): the photo is replaced with the caption
    media = lambda: fake.ok_calls("editMessageMedia")  # noqa: E731
    fake.wait(lambda: len(media()) == 1)
    assert len(fake.ok_calls("sendPhoto")) == 1 and edits(fake) == []
    caption = str(json.loads(media()[0].fields["media"])["caption"])
    assert caption.startswith("🚨 Unknown person at door")
    assert caption.count("unknown face") == 2 and "3 photos of this visit" in caption
    harness.inject_alert(jpeg_bytes(), visit_alert(seq=2, revision=1, faces=[STRANGER, SECOND]))  # again
    wait_until(lambda: not harness.service.deliverer.busy, 5)
    assert len(media()) == 1 and len(fake.ok_calls("sendPhoto")) == 1


def test_a_revision_of_a_visit_never_sent_is_sent_as_its_alert(harness: Harness, fake: FakeTelegram) -> None:
    harness.inject_alert(jpeg_bytes(), visit_alert(seq=1, revision=1))  # the first decision said "known"
    fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 1)
    assert edits(fake) == []


def test_a_correction_nobody_was_alerted_about_is_not_sent(harness: Harness, fake: FakeTelegram) -> None:
    named_later(harness)  # handled before inject returns
    wait_until(lambda: not harness.service.deliverer.busy, 5)
    assert [c.method for c in fake.calls if c.method != "getUpdates"] == []


def test_in_the_outbox_the_correction_is_written_beside_the_alert(tmp_path: Path) -> None:
    h = Harness(tmp_path / "data", make_settings(None))
    outbox = tmp_path / "data" / "outbox"
    try:
        h.inject_alert(jpeg_bytes(), visit_alert())
        (alert_json,) = outbox.glob("*.json")
        named_later(h)
        named_later(h)  # redelivered: still one correction
        wait_until(lambda: len(list(outbox.glob("*.json"))) == 2, 5)
        (correction,) = outbox.glob("*.r1.json")
        assert correction.name == alert_json.name.removesuffix(".json") + ".r1.json"
        data = json.loads(correction.read_text())
        assert data["revision"] == 1 and data["verdict"] == "known"
        assert data["caption"].startswith("✅ It was owner (0.78) — no stranger")
        h.inject_alert(jpeg_bytes(), visit_alert(seq=2, revision=2, faces=[STRANGER, SECOND]))
        (update,) = outbox.glob("*.r2.json")
        assert json.loads(update.read_text())["caption"].count("unknown face") == 2
        assert len(list(outbox.glob("*.jpg"))) == 1
    finally:
        h.close()


def test_a_correction_that_comes_while_the_photo_waits_in_the_spool_edits_it_once_sent(
    harness: Harness, fake: FakeTelegram
) -> None:
    fake.fail("sendPhoto", 500, 500)  # Telegram is away for a while: the alert waits in the spool
    harness.inject_alert(jpeg_bytes(), visit_alert())
    assert fake.ok_calls("sendPhoto") == []
    named_later(harness)
    fake.wait(lambda: len(edits(fake)) == 1)
    (sent,) = fake.ok_calls("sendPhoto")
    assert edits(fake)[0]["message_id"] == sent.result["message_id"]
    assert str(edits(fake)[0]["caption"]).startswith("✅ It was owner")
