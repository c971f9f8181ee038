"""The notifier under faults: a full disk, a bad caption field, a hung Telegram, redelivered and
duplicated alerts. Real HTTP Bot API stand-in; the real MqttBus over the in-memory broker."""

from __future__ import annotations

import base64
import errno
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

import homesec.spool
import notifier_node.handled
import notifier_node.store
from homesec.contract import Alert, ArmCommand, Face, Verdict, meta_property
from notifier_node.caption import build_caption
from notifier_node.policy import Refusal, Strangers
from tests.fake_telegram import CHAT, FakeTelegram, jpeg_bytes, say, serve_fake, wait_text
from tests.helpers import FakeClock, LocalBus, wait_until
from tests.test_notifier_bot import Recognizer
from tests.test_notifier_delivery import Harness, make_settings

OTHER_CHAT = 5151


class FullDisk:
    """Every write the notifier makes to its data dir fails with ENOSPC while `full` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.refused = 0
        for module in (homesec.spool, notifier_node.store, notifier_node.handled):
            monkeypatch.setattr(module, "write_atomic", self._guard(module.write_atomic))
        handled = notifier_node.handled
        monkeypatch.setattr(handled, "append_line", self._guard(handled.append_line))

    def _guard(self, write: Callable[..., None]) -> Callable[..., None]:
        def guarded(*args: Any, **kw: Any) -> None:
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            write(*args, **kw)

        return guarded


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    yield from serve_fake(OTHER_CHAT)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    return FullDisk(monkeypatch)


def retrying_bus() -> LocalBus:
    return LocalBus("notifier/main", retry_s=(0.05, 0.2))


def an_alert(event_id: str = "ev1", seq: int = 0, **kw: Any) -> Alert:
    face = Face(box=(1, 1, 20, 20), score=0.9, label=None, similarity=0.3, closest="alice")
    fields: dict[str, Any] = {
        "camera": "door",
        "event_id": event_id,
        "seq": seq,
        "verdict": Verdict.UNKNOWN,
        "faces": [face],
        "snapshot_ts": "2024-07-01T18:30:05Z",
    }
    return Alert(**(fields | kw))


def sent_events(fake: FakeTelegram, chat: int = CHAT) -> list[str]:
    return [c.fields["caption"] for c in fake.ok_calls("sendPhoto") if c.fields["chat_id"] == str(chat)]


# ---------------------------------------------------------------------------------- acknowledge late
def test_a_full_disk_leaves_the_alert_unacked_and_it_is_sent_once_space_is_back(
    tmp_path: Path, fake: FakeTelegram, disk: FullDisk
) -> None:
    h = Harness(tmp_path / "data", make_settings(fake.url), retrying_bus())
    try:
        disk.full = True
        h.bus.inject(h.bus.topics.alert("door"), jpeg_bytes(), user_properties=meta_property(an_alert()))
        wait_until(lambda: any(e.error == "retry_later" for e in h.bus.errors), 5)
        report = next(e for e in h.bus.errors if e.error == "retry_later")
        assert "No space left" in report.detail and "door/ev1/0" in report.detail
        wait_until(lambda: disk.refused >= 2, 5)  # retried by the bus itself, not only on reconnect
        assert fake.ok_calls("sendPhoto") == [] and len(h.service.deliverer.spool) == 0
        disk.full = False
        fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 1)
        fake.wait(lambda: len(h.delivered()) == 1)
        h.bus.drain()
        assert len(fake.ok_calls("sendPhoto")) == 1
    finally:
        h.close()


def test_a_retry_after_a_partial_failure_sends_each_chat_once(
    tmp_path: Path, fake: FakeTelegram, disk: FullDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path / "data", make_settings(fake.url, alert_chat_ids=[CHAT, OTHER_CHAT]), retrying_bus())
    spool = h.service.deliverer.spool
    real_put, puts = spool.put, []

    def put_then_fill_the_disk(payload: bytes, meta: dict[str, Any] | None = None) -> str:
        puts.append(meta)
        disk.full = len(puts) == 2  # the first chat's record fits, the second's does not, once
        try:
            return real_put(payload, meta)
        finally:
            disk.full = False

    monkeypatch.setattr(spool, "put", put_then_fill_the_disk)
    try:
        h.bus.inject(h.bus.topics.alert("door"), jpeg_bytes(), user_properties=meta_property(an_alert()))
        fake.wait(lambda: len(sent_events(fake, OTHER_CHAT)) == 1)
        fake.wait(lambda: len(h.delivered()) == 2)
        assert len(sent_events(fake, CHAT)) == 1  # spooled by the first attempt, not again by the retry
    finally:
        h.close()


def test_a_snapshot_time_out_of_range_is_a_bad_payload_and_nothing_breaks(
    harness: Harness, fake: FakeTelegram
) -> None:
    meta = an_alert().model_dump(mode="json") | {"snapshot_ts": "0001-01-01T00:00:00+14:00"}
    harness.bus.inject(
        harness.bus.topics.alert("door"), jpeg_bytes(), user_properties={"meta": json.dumps(meta)}
    )
    assert [e.error for e in harness.bus.errors] == ["bad_payload"]
    assert "out of range" in harness.bus.errors[0].detail
    harness.alert(event_id="ev2")
    assert len(fake.ok_calls("sendPhoto")) == 1


@pytest.mark.parametrize("zone", [None, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")])
@pytest.mark.parametrize("moment", ["0001-01-02T00:00:00Z", "9999-12-30T23:59:59.999Z"])
@pytest.mark.parametrize("verdict", list(Verdict))
def test_captions_exist_for_every_time_and_verdict_the_contract_accepts(
    zone: ZoneInfo | None, moment: str, verdict: Verdict
) -> None:
    text = build_caption(an_alert(snapshot_ts=moment, verdict=verdict), zone, grouped=2)
    when = text.splitlines()[1]
    assert (
        "door" in text.splitlines()[0]
        and when.startswith("🕒 ")
        and any(y in when for y in ("1-01-0", "9999", "10000"))
    )


# --------------------------------------------------------------------------- off the bus worker thread
def test_a_hung_telegram_does_not_delay_arming(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.hang_s = 10.0
    h = Harness(tmp_path / "data", make_settings(fake.url, request_timeout_s=10.0))
    try:
        fake.fail("sendPhoto", "hang")
        h.bus.inject(h.bus.topics.alert("door"), jpeg_bytes(), user_properties=meta_property(an_alert()))
        fake.wait(lambda: not fake.faults["sendPhoto"])  # the photo request is at the server, hanging
        began = time.monotonic()
        h.bus.inject(h.bus.topics.armed_cmd, ArmCommand(armed=False, by="test"))  # returns once handled
        assert time.monotonic() - began < 2.0  # not the 10 s the send hangs for
        assert json.loads(h.bus.retained[h.bus.topics.armed].payload)["armed"] is False
    finally:
        fake.stop()  # ends the hang
        h.close()


# ------------------------------------------------------------------------------- at most one alert
def test_redelivered_and_duplicated_alerts_are_sent_once(tmp_path: Path, fake: FakeTelegram) -> None:
    settings = make_settings(fake.url)
    h = Harness(tmp_path / "data", settings)
    h.inject_alert(jpeg_bytes(), an_alert(requested=True))  # captures are never grouped: only the key
    h.inject_alert(jpeg_bytes(), an_alert(requested=True))  # the broker's redelivery, a second replica
    h.inject_alert(jpeg_bytes(), an_alert(requested=True, seq=1))  # the next photo is news
    fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 2)
    h.close()
    again = Harness(tmp_path / "data", settings)  # a restart remembers what it handled
    try:
        again.inject_alert(jpeg_bytes(), an_alert(requested=True, seq=1))
        again.inject_alert(jpeg_bytes(), an_alert(requested=True, event_id="ev2"))
        fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 3)
        again.bus.drain()
        assert len(fake.ok_calls("sendPhoto")) == 3
    finally:
        again.close()


def test_the_record_of_handled_alerts_is_bounded_and_pruned_by_age(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "handled.jsonl"
    keys = notifier_node.handled.HandledKeys(path, max_age_s=100, max_keys=50, clock=lambda: now[0])
    for i in range(200):
        keys.add(f"door/ev{i}/0")
    assert len(keys) == 50 and "door/ev199/0" in keys and "door/ev0/0" not in keys
    assert len(path.read_text().splitlines()) <= 2 * 50 + 64
    now[0] += 101
    keys.add("door/new/0")
    assert len(keys) == 1
    path.write_text(path.read_text() + '[1100.0, "door/cut')  # a crash mid-append
    reloaded = notifier_node.handled.HandledKeys(path, max_age_s=100, max_keys=50, clock=lambda: now[0])
    assert "door/new/0" in reloaded and len(reloaded) == 1


@pytest.fixture
def harness(tmp_path: Path, fake: FakeTelegram) -> Iterator[Harness]:
    h = Harness(tmp_path / "data", make_settings(fake.url))
    yield h
    h.close()


# ------------------------------------------------------------------------------------- owner first
def test_a_strangers_flood_gets_one_refusal_and_never_delays_the_owner(
    tmp_path: Path, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="notifier_node")
    h = Harness(tmp_path / "data", make_settings(fake.url, chat_interval_s=0.2))  # 20 refusals: 4 s
    try:
        for i in range(20):
            say(fake, f"/disarm {i}", chat=OTHER_CHAT)
        say(fake, "/status")
        wait_text(fake, "Armed")
        assert len(fake.texts(OTHER_CHAT)) <= 1  # nothing of the flood was queued ahead of the owner
        fake.wait(lambda: len(fake.texts(OTHER_CHAT)) == 1)
        say(fake, "/help")
        wait_text(fake, "/status")
        assert fake.texts(OTHER_CHAT) == [fake.texts(OTHER_CHAT)[0]]  # one refusal, then silence
        assert "private bot" in fake.texts(OTHER_CHAT)[0] and h.service.armed().armed
        counted = [r.getMessage() for r in caplog.records if "ignored since its refusal" in r.getMessage()]
        assert counted == [
            f"chat {OTHER_CHAT}: 1 messages ignored since its refusal",
            f"chat {OTHER_CHAT}: 10 messages ignored since its refusal",
        ]
    finally:
        h.close()


def test_strangers_are_answered_again_after_an_hour() -> None:
    clock = FakeClock()
    strangers = Strangers(3600, clock)
    assert strangers.refuse(1) == Refusal(True, 0)
    assert [strangers.refuse(1).answer for _ in range(3)] == [False, False, False]
    assert strangers.refuse(2).answer  # another chat is another sender
    clock.advance(3600)
    assert strangers.refuse(1) == Refusal(True, 3)


# -------------------------------------------------------------------------------- photos for requests
def noisy_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((width, height), 120).convert("RGB").save(buf, format="JPEG", quality=98)
    return buf.getvalue()


def test_a_train_photo_too_large_for_the_bus_is_shrunk_first(tmp_path: Path, fake: FakeTelegram) -> None:
    bus = LocalBus("notifier/main", max_payload_bytes=300_000)
    recognizer = Recognizer(bus)
    big = noisy_jpeg(1200, 900)
    assert len(big) * 4 / 3 > 300_000  # as a base64 request it would be refused by the bus
    h = Harness(tmp_path / "data", make_settings(fake.url, request_photo_mb=0.15), bus)
    try:
        say(fake, "", caption="/train alice", photo=fake.add_photo(big))
        wait_text(fake, "Enrolled alice")
        sent = base64.b64decode(recognizer.train[0].image_b64)
        assert len(sent) <= 0.15 * 1024 * 1024 and Image.open(io.BytesIO(sent)).size[0] >= 300
    finally:
        h.close()


def test_a_request_the_bus_cannot_carry_gets_the_real_reason(tmp_path: Path, fake: FakeTelegram) -> None:
    bus = LocalBus("notifier/main", max_payload_bytes=20_000)
    recognizer = Recognizer(bus)
    h = Harness(tmp_path / "data", make_settings(fake.url), bus)  # photos up to 4 MB go as they are
    try:
        say(fake, "", caption="/train alice", photo=fake.add_photo(noisy_jpeg(400, 300)))
        text = wait_text(fake, "Too large")
        assert "training alice" in text and "max_payload_mb" in text
        assert recognizer.train == [] and not any("No answer" in t for t in fake.texts())
        say(fake, "", caption="/train bob", photo=fake.add_photo(b"\xff\xd8 not a photo at all"))
        assert "cannot be used" in wait_text(fake, "cannot be used")
    finally:
        h.close()


def test_an_alert_sent_just_before_a_crash_is_not_sent_again_after_the_restart(
    tmp_path: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(fake.url)
    first = Harness(tmp_path / "data", settings)
    monkeypatch.setattr(first.service.deliverer.spool, "remove", lambda item_id: None)  # killed right here
    first.bus.inject(first.bus.topics.alert("door"), jpeg_bytes(), user_properties=meta_property(an_alert()))
    fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 1)
    first.close()
    assert len(first.service.deliverer.spool) == 1
    second = Harness(tmp_path / "data", settings)
    try:
        wait_until(lambda: len(second.service.deliverer.spool) == 0, 5)
        assert len(fake.ok_calls("sendPhoto")) == 1
    finally:
        second.close()


def test_a_key_the_disk_refused_is_kept_in_memory_and_saved_with_the_next(
    tmp_path: Path, disk: FullDisk
) -> None:
    path = tmp_path / "handled.jsonl"
    keys = notifier_node.handled.HandledKeys(path)
    disk.full = True
    with pytest.raises(OSError):
        keys.add("door/a/0")
    assert "door/a/0" in keys  # a retry in this process does not redo the work
    disk.full = False
    keys.add("door/b/0")
    assert {"door/a/0", "door/b/0"} <= set(json.loads(line)[1] for line in path.read_text().splitlines())


def test_without_a_token_a_full_disk_also_means_later_not_lost(tmp_path: Path, disk: FullDisk) -> None:
    h = Harness(tmp_path / "data", make_settings(None), retrying_bus())
    try:
        disk.full = True
        h.bus.inject(h.bus.topics.alert("door"), jpeg_bytes(), user_properties=meta_property(an_alert()))
        wait_until(lambda: any(e.error == "retry_later" for e in h.bus.errors), 5)
        disk.full = False
        wait_until(lambda: len(list((tmp_path / "data" / "outbox").glob("*.json"))) == 1, 5)
        wait_until(lambda: len(h.delivered()) == 1, 5)
    finally:
        h.close()


def test_a_retried_alert_is_not_grouped_into_its_own_visit(
    tmp_path: Path, fake: FakeTelegram, disk: FullDisk
) -> None:
    h = Harness(tmp_path / "data", make_settings(fake.url, cooldown_s=60), retrying_bus())
    try:
        disk.full = True
        h.bus.inject(h.bus.topics.alert("door"), jpeg_bytes(), user_properties=meta_property(an_alert()))
        wait_until(lambda: disk.refused >= 1, 5)
        disk.full = False
        fake.wait(lambda: len(fake.ok_calls("sendPhoto")) == 1)
        assert "more photo" not in fake.ok_calls("sendPhoto")[0].fields["caption"]
    finally:
        h.close()


def test_a_refusal_that_hangs_does_not_hold_up_the_owner(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.hang_s, fake.hung_chats = 10.0, {OTHER_CHAT}
    h = Harness(tmp_path / "data", make_settings(fake.url, request_timeout_s=10.0))
    try:
        say(fake, "hello", chat=OTHER_CHAT)
        fake.wait(lambda: h.service.bot is not None and h.service.bot.offset is not None)  # it has the update
        began = time.monotonic()
        say(fake, "/status")
        wait_text(fake, "Armed")
        assert time.monotonic() - began < 5.0  # not behind the 10 s the refusal hangs for
    finally:
        fake.stop()
        h.close()
