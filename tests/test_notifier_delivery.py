"""Alert delivery through NotifierService, against a real local HTTP server standing in for Telegram
and the in-memory bus: once, with the photo; 429s waited out; outages lose and duplicate nothing."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

from homesec.contract import Alert, ArmCommand, Face, Verdict, meta_property
from homesec.spool import SpoolItem
from notifier_node.service import NotifierService
from notifier_node.settings import NotifierSettings
from tests.fake_telegram import CHAT, TOKEN, FakeTelegram, jpeg_bytes, serve_fake, wait_text
from tests.helpers import LocalBus, wait_until

FAST = {
    "poll_timeout_s": 1,
    "connect_timeout_s": 1.0,
    "request_timeout_s": 1.0,
    "retry_min_s": 0.05,
    "retry_max_s": 0.2,
    "chat_interval_s": 0.0,
    "cooldown_s": 0.0,
    "reply_timeout_s": 1.0,
}


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    yield from serve_fake()


def make_settings(base_url: str | None, **overrides: Any) -> NotifierSettings:
    """Fast timings, the test chat allowed, and a token when there is a Bot API at `base_url`."""
    fields: dict[str, Any] = dict(FAST, allowed_chat_ids=[CHAT]) | overrides
    if base_url is not None:
        fields |= {"base_url": base_url, "token": SecretStr(TOKEN)}
    return NotifierSettings(**fields)


class Harness:
    def __init__(self, data: Path, settings: NotifierSettings, bus: LocalBus | None = None) -> None:
        self.bus = bus or LocalBus("notifier/main")
        self.service = NotifierService(settings, data, self.bus)
        self.service.start()

    def alert(
        self, camera: str = "door", event_id: str = "ev1", verdict: Verdict = Verdict.UNKNOWN, **kw: Any
    ) -> bytes:
        photo = kw.pop("photo", None) or jpeg_bytes()
        visitor = kw.pop("visitor", None)
        requested = kw.pop("requested", False)
        faces = [
            Face(box=(1, 1, 20, 20), score=0.9, label=None, similarity=0.3, closest="alice", visitor=visitor)
        ]
        meta = Alert(
            camera=camera, event_id=event_id, seq=kw.pop("seq", 0), verdict=verdict,
            faces=faces if verdict == Verdict.UNKNOWN else [], snapshot_ts="2024-07-01T18:30:05Z",
            requested=requested,
        )  # fmt: skip
        self.inject_alert(photo, meta)
        return photo

    def inject_alert(self, photo: bytes, meta: Alert) -> None:
        """Publish the alert and return once the delivery thread has sent what it spooled, or has
        failed at least once to."""
        deliverer = self.service.deliverer
        failed_before = deliverer.failed_attempts
        self.bus.inject(self.bus.topics.alert(meta.camera), photo, user_properties=meta_property(meta))
        wait_until(
            lambda: (
                (len(deliverer.spool) == 0 and not deliverer.busy)
                or deliverer.failed_attempts > failed_before
            ),
            timeout=10,
        )

    def delivered(self) -> list[dict[str, Any]]:
        return self.bus.json(self.bus.topics.delivered)

    def close(self) -> None:
        self.service.stop()


@pytest.fixture
def harness(tmp_path: Path, fake: FakeTelegram) -> Iterator[Harness]:
    h = Harness(tmp_path / "data", make_settings(fake.url))
    yield h
    h.close()


def test_an_alert_arrives_once_with_its_photo_caption_and_enroll_button(
    harness: Harness, fake: FakeTelegram
) -> None:
    photo = harness.alert()
    (call,) = fake.ok_calls("sendPhoto")  # sent by the delivery thread from the spool, once
    assert call.files["photo"] == photo
    assert call.fields["chat_id"] == str(CHAT)
    assert "Unknown person at door" in call.fields["caption"] and "alice (0.30)" in call.fields["caption"]
    markup = json.loads(call.fields["reply_markup"])
    assert markup["inline_keyboard"][0][0]["callback_data"].startswith("enroll:")
    (delivered,) = harness.delivered()
    assert (delivered["event_id"], delivered["channel"], delivered["chat_id"], delivered["grouped"]) == (
        "ev1",
        "telegram",
        str(CHAT),
        1,
    )
    assert len(harness.service.deliverer.spool) == 0


def test_a_requested_snapshot_is_sent_known_face_disarmed_and_all(tmp_path: Path, fake: FakeTelegram) -> None:
    h = Harness(tmp_path / "data", make_settings(fake.url))
    try:
        h.bus.inject(h.bus.topics.armed_cmd, ArmCommand(armed=False, by="test"))
        h.alert(verdict=Verdict.KNOWN, event_id="snap1", requested=True)
        fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 1)
        assert fake.ok_calls("sendPhoto")[0].fields["caption"].startswith("📷 Snapshot at door")
        h.alert(verdict=Verdict.KNOWN, event_id="snap2", requested=True)  # no cooldown for what was asked
        fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 2)
    finally:
        h.close()


def test_known_faces_no_face_off_and_disarmed_send_nothing(tmp_path: Path, fake: FakeTelegram) -> None:
    h = Harness(tmp_path / "data", make_settings(fake.url, alert_on_no_face=False))
    try:
        h.alert(verdict=Verdict.KNOWN)
        h.alert(verdict=Verdict.NO_FACE, event_id="ev2")
        h.bus.inject(h.bus.topics.armed_cmd, ArmCommand(armed=False, by="test"))
        h.alert(event_id="ev3")
        assert fake.ok_calls("sendPhoto") == [] and h.delivered() == []
        h.bus.inject(h.bus.topics.armed_cmd, ArmCommand(armed=True, by="test"))
        h.alert(event_id="ev4")
        assert len(fake.ok_calls("sendPhoto")) == 1
    finally:
        h.close()


def test_a_burst_of_one_event_is_one_photo_then_the_caption_counts_the_rest(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    h = Harness(tmp_path / "data", make_settings(fake.url, cooldown_s=60))
    try:
        for seq in range(3):
            h.alert(seq=seq)
        assert len(fake.ok_calls("sendPhoto")) == 1
        assert [d["grouped"] for d in h.delivered()] == [1]
        fake.wait(
            lambda: any("+2 more photos" in c.fields["caption"] for c in fake.ok_calls("editMessageCaption"))
        )
        h.alert(camera="garden", event_id="other")  # another camera is another visit
        assert len(fake.ok_calls("sendPhoto")) == 2
    finally:
        h.close()


def test_a_429_is_waited_out(harness: Harness, fake: FakeTelegram) -> None:
    fake.fail("sendPhoto", (429, 1))
    harness.alert()
    assert fake.ok_calls("sendPhoto") == []
    assert len(harness.service.deliverer.spool) == 1  # durable before the handler returned
    fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 1)
    refused, sent = [c for c in fake.calls if c.method == "sendPhoto"]
    assert refused.status == 429 and sent.at - refused.at >= 0.9  # honoured retry_after
    fake.wait(lambda: len(harness.delivered()) == 1)


def test_delivery_outlives_a_disk_error(
    harness: Harness, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = harness.service.deliverer.spool
    real_peek, failed = spool.peek, threading.Event()

    def peek_failing_once() -> SpoolItem | None:
        if not failed.is_set():
            failed.set()
            raise OSError("disk hiccup")
        return real_peek()

    monkeypatch.setattr(spool, "peek", peek_failing_once)
    fake.wait(failed.is_set)  # the delivery thread met the error...
    fake.down = True
    harness.alert()
    assert len(spool) == 1
    fake.down = False
    fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 1)  # ...and still drains the spool


def test_an_outage_then_recovery_loses_and_duplicates_nothing(harness: Harness, fake: FakeTelegram) -> None:
    fake.down = True
    photos = [
        harness.alert(camera=f"cam{i}", event_id=f"ev{i}", photo=jpeg_bytes(color=(i * 40, 0, 0)))
        for i in range(5)
    ]
    fake.wait(lambda: len([c for c in fake.calls if c.method == "sendPhoto"]) >= 3)  # retries going on
    assert fake.ok_calls("sendPhoto") == [] and harness.delivered() == []
    fake.fail("sendPhoto", "hang")  # and a timeout on the way back
    fake.down = False
    fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 5, timeout=15)
    sent = fake.ok_calls("sendPhoto")
    assert [c.files["photo"] for c in sent] == photos  # in order, each once
    fake.wait(lambda: len(harness.delivered()) == 5)  # the client has the last answer too
    assert [d["event_id"] for d in harness.delivered()] == [f"ev{i}" for i in range(5)]
    fake.wait(lambda: len(harness.service.deliverer.spool) == 0)


def test_spooled_alerts_survive_a_restart_and_connection_refused(tmp_path: Path) -> None:
    tg = FakeTelegram().start()
    port = tg.server.port
    tg.stop(close_socket=True)  # Telegram unreachable: connection refused
    settings = make_settings(f"http://127.0.0.1:{port}")
    first = Harness(tmp_path / "data", settings)
    photo = first.alert()
    first.close()
    assert len(first.service.deliverer.spool) == 1
    tg = FakeTelegram(port=port).start()
    try:
        second = Harness(tmp_path / "data", settings)
        tg.wait(lambda: len(tg.ok_calls("sendPhoto")) == 1)
        assert tg.ok_calls("sendPhoto")[0].files["photo"] == photo
        second.close()
        assert len(second.service.deliverer.spool) == 0 and len(second.delivered()) == 1
    finally:
        tg.stop()


def test_a_refused_chat_is_parked_and_reported_not_retried(tmp_path: Path, fake: FakeTelegram) -> None:
    h = Harness(tmp_path / "data", make_settings(fake.url, alert_chat_ids=[777, CHAT]))  # 777 does not exist
    try:
        h.alert()
        assert [c.fields["chat_id"] for c in fake.ok_calls("sendPhoto")] == [str(CHAT)]
        parked = list((tmp_path / "data" / "notifier" / "parked").glob("*.json"))
        assert len(parked) == 1 and "chat not found" in json.loads(parked[0].read_text())["error"]
        assert [e.error for e in h.bus.errors] == ["telegram_refused"]
        assert len([c for c in fake.calls if c.method == "sendPhoto"]) == 2
    finally:
        h.close()


def test_without_a_token_alerts_go_to_the_outbox(tmp_path: Path) -> None:
    h = Harness(tmp_path / "data", make_settings(None))
    try:
        photo = h.alert()
        h.alert(camera="garden", event_id="ev2", verdict=Verdict.NO_FACE)
        pictures = sorted((tmp_path / "data" / "outbox").glob("*.jpg"))
        assert len(pictures) == 2 and pictures[0].read_bytes() == photo
        assert pictures[0].name.endswith("_door_ev1.jpg")
        record = json.loads(pictures[0].with_suffix(".json").read_text())
        assert record["alert"]["event_id"] == "ev1" and "Unknown person at door" in record["caption"]
        assert [d["channel"] for d in h.delivered()] == ["outbox", "outbox"]
        assert not list((tmp_path / "data" / "outbox").glob(".*.tmp"))
    finally:
        h.close()


def test_a_bad_alert_is_reported_not_fatal(harness: Harness, fake: FakeTelegram) -> None:
    harness.bus.inject(harness.bus.topics.alert("door"), b"not a jpeg", user_properties={"meta": "{}"})
    harness.bus.inject(harness.bus.topics.alert("door"), b"\x89PNG")
    assert [e.error for e in harness.bus.errors] == ["bad_payload", "bad_payload"]
    harness.alert(photo=b"\xff\xd8 but not really a JPEG")  # parked for inspection, reported
    assert harness.bus.errors[-1].error == "alert_unsendable"
    assert "The photo could not be sent" in wait_text(fake, "Unknown person at door")  # the words still go
    harness.alert(event_id="ev2")
    assert len(fake.ok_calls("sendPhoto")) == 1


def test_armed_state_is_retained_and_persisted(tmp_path: Path, fake: FakeTelegram) -> None:
    h = Harness(tmp_path / "data", make_settings(fake.url))
    h.bus.inject(h.bus.topics.armed_cmd, ArmCommand(armed=False, by="mqtt"))
    h.close()
    retained = h.bus.retained[h.bus.topics.armed]
    assert retained.retain and json.loads(retained.payload)["armed"] is False
    again = Harness(tmp_path / "data", make_settings(fake.url))
    try:
        state = json.loads(again.bus.retained[again.bus.topics.armed].payload)
        assert state["armed"] is False and state["by"] == "mqtt"
    finally:
        again.close()


def test_a_photo_over_the_size_limit_is_recompressed_before_sending(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    noisy = io.BytesIO()
    Image.effect_noise((800, 600), 120).convert("RGB").save(noisy, format="JPEG", quality=98)
    assert len(noisy.getvalue()) > 60_000
    h = Harness(tmp_path / "data", make_settings(fake.url, max_photo_bytes=60_000))
    try:
        h.alert(photo=noisy.getvalue())
        (call,) = fake.ok_calls("sendPhoto")
        assert len(call.files["photo"]) <= 60_000
        Image.open(io.BytesIO(call.files["photo"])).verify()
    finally:
        h.close()
