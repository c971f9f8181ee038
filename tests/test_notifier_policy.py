"""Pure parts of the notifier: rate limit, backoff, grouping, captions, photo fitting, stores, parsing."""

from __future__ import annotations

import io
import logging
import random
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from pydantic import SecretStr, ValidationError

from homesec.config import ConfigError
from homesec.contract import Alert, ArmedState, ContractError, Face, GalleryResult, Topics, Verdict
from notifier_node.bot import parse_command
from notifier_node.caption import build_caption
from notifier_node.photo import check_jpeg, fit_photo, largest_photo
from notifier_node.policy import Grouper, RateLimiter, backoff_delay
from notifier_node.recognizer_commands import RecognizerCommands
from notifier_node.secrets import telegram_token
from notifier_node.settings import NotifierSettings
from notifier_node.store import AlertStore, ArmedStore, alert_stem
from notifier_node.telegram import clip, utf16_len


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alert(verdict: Verdict = Verdict.UNKNOWN, faces: list[Face] | None = None, **kw: object) -> Alert:
    base: dict[str, object] = {
        "camera": "door",
        "event_id": "ev1",
        "seq": 0,
        "verdict": verdict,
        "faces": faces or [],
        "snapshot_ts": "2024-07-01T18:30:05.000Z",
    }
    return Alert.model_validate(base | kw)


def unknown_face(closest: str | None = "alice", similarity: float | None = 0.31) -> Face:
    return Face(box=(1, 2, 30, 40), score=0.9, label=None, similarity=similarity, closest=closest)


# ------------------------------------------------------------------------------------- rate limit
def test_rate_limiter_spaces_messages_per_chat() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock)
    assert [limiter.reserve(1) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert limiter.reserve(2) == 0.0  # another chat has its own budget
    clock.now += 10
    assert limiter.reserve(1) == 0.0
    limiter.push_back(1, 5)  # Telegram said: retry after 5 s
    assert limiter.reserve(1) == pytest.approx(5.0)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0)]:
        delays = [backoff_delay(attempt, 1.0, 30.0, rng) for _ in range(200)]
        assert min(delays) >= step / 2 and max(delays) <= step
        assert max(delays) - min(delays) > step / 4  # really jittered


# ---------------------------------------------------------------------------------------- grouping
def test_a_burst_of_one_event_is_one_alert_counting_its_photos() -> None:
    clock = FakeClock()
    g = Grouper(cooldown=60, clock=clock)
    first = g.admit("door", "ev1", Verdict.UNKNOWN)
    assert first.send
    later = [g.admit("door", "ev1", Verdict.UNKNOWN) for _ in range(2)]
    assert [a.send for a in later] == [False, False]
    assert {a.group for a in later} == {first.group} and g.count(first.group) == 3
    assert g.admit("garden", "ev9", Verdict.UNKNOWN).send  # cameras group separately


def test_cooldown_groups_new_events_then_expires() -> None:
    clock = FakeClock()
    g = Grouper(cooldown=60, clock=clock)
    assert g.admit("door", "ev1", Verdict.UNKNOWN).send
    clock.now += 30
    assert not g.admit("door", "ev2", Verdict.UNKNOWN).send
    clock.now += 31  # 61 s after the group opened
    assert g.admit("door", "ev3", Verdict.UNKNOWN).send


def test_an_unknown_face_after_a_no_face_photo_is_sent() -> None:
    g = Grouper(cooldown=60, clock=FakeClock())
    assert g.admit("door", "ev1", Verdict.NO_FACE).send
    assert not g.admit("door", "ev1", Verdict.NO_FACE).send
    assert g.admit("door", "ev1", Verdict.UNKNOWN).send
    assert not g.admit("door", "ev1", Verdict.NO_FACE).send


# ----------------------------------------------------------------------------------------- caption
def test_caption_says_what_where_when_and_closest_match() -> None:
    text = build_caption(alert(faces=[unknown_face()]), ZoneInfo("Europe/Paris"), grouped=3)
    assert "Unknown person at door" in text
    assert "2024-07-01 20:30:05 CEST" in text  # 18:30 UTC in Paris, summer time
    assert "closest: alice (0.31)" in text
    assert "+2 more photos" in text


def test_caption_for_no_face_and_known_and_rejected_faces() -> None:
    faces = [
        Face(box=(0, 0, 5, 5), score=0.5, label=None, similarity=None, rejected="too small"),
        Face(box=(0, 0, 50, 50), score=0.9, label="bob", similarity=0.8),
    ]
    text = build_caption(alert(Verdict.NO_FACE, faces), UTC)
    assert text.startswith("👀 Motion, no usable face at door")
    assert "face not used: too small" in text and "known: bob (0.80)" in text
    assert "more photo" not in text


def test_caption_stays_within_telegram_limit() -> None:
    many = [unknown_face(closest="x" * 60) for _ in range(40)]
    long_camera = alert(faces=many)
    text = build_caption(long_camera, UTC, grouped=99)
    assert utf16_len(text) <= 1024


def test_clip_counts_utf16_units() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("🚨" * 10, 5) == "🚨🚨…"  # each emoji is 2 UTF-16 units
    assert utf16_len(clip("a" * 2000, 1024)) == 1024


# ------------------------------------------------------------------------------------------- photo
def _jpeg(w: int, h: int, noise: bool = False) -> bytes:
    img = Image.effect_noise((w, h), 100).convert("RGB") if noise else Image.new("RGB", (w, h), "gray")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_small_photos_are_sent_untouched() -> None:
    data = _jpeg(64, 48)
    assert fit_photo(data) is data


def test_big_photos_are_recompressed_under_the_limit() -> None:
    data = _jpeg(1200, 900, noise=True)
    out = fit_photo(data, max_bytes=len(data) // 4)
    assert len(out) <= len(data) // 4 and out.startswith(b"\xff\xd8")
    Image.open(io.BytesIO(out)).verify()


def test_oversized_dimensions_are_scaled_down() -> None:
    out = fit_photo(_jpeg(900, 300), max_dim_sum=600)
    with Image.open(io.BytesIO(out)) as img:
        assert img.width + img.height <= 600 and img.width / img.height == pytest.approx(3, rel=0.02)


def test_non_jpeg_alert_payload_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="not a JPEG"):
        check_jpeg(b"\x89PNG....")


# ------------------------------------------------------------------------------------------ stores
def test_armed_state_survives_a_restart(tmp_path: Path) -> None:
    store = ArmedStore(tmp_path / "armed.json", default=True)
    assert store.load().armed is True
    store.save(ArmedState(armed=False, by="telegram:bob"))
    again = ArmedStore(tmp_path / "armed.json", default=True).load()
    assert (again.armed, again.by) == (False, "telegram:bob")
    (tmp_path / "armed.json").write_text("{broken")
    assert ArmedStore(tmp_path / "armed.json", default=False).load().armed is False


def test_alert_store_keeps_the_last_photos_and_their_messages(tmp_path: Path) -> None:
    store = AlertStore(tmp_path, keep=2)
    keys = [store.add(f"jpeg{i}".encode()) for i in range(3)]
    store.link(7, 100, keys[2])
    assert store.jpeg(keys[0]) is None and store.jpeg(keys[2]) == b"jpeg2"
    reloaded = AlertStore(tmp_path, keep=2)
    assert reloaded.key_for(7, 100) == keys[2] and reloaded.key_for(7, 101) is None
    assert reloaded.jpeg("../../etc/passwd") is None
    assert len(keys[0]) <= 16  # fits in callback_data with its prefix


def test_outbox_names_are_safe() -> None:
    stem = alert_stem("door", "../../x y")
    assert "/" not in stem and stem.endswith("_door_x-y")


class Asked:
    """Stands in for the Requester: keeps each request with its callbacks, answers nothing by itself."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def request_async(self, topic: str, payload: Any, answer_model: type, **kw: Any) -> None:
        self.requests.append(dict(kw, topic=topic, payload=payload))


class Said:
    def __init__(self) -> None:
        self.messages: list[tuple[int, str, int | None]] = []

    def say(self, chat: int, text: str, *, reply_to: int | None = None, **kw: Any) -> None:
        self.messages.append((chat, text, reply_to))


def test_an_unanswered_request_says_what_it_was_and_an_answer_goes_to_its_chat(tmp_path: Path) -> None:
    asked, said = Asked(), Said()
    commands = RecognizerCommands(
        asked,
        Topics(),
        said,
        AlertStore(tmp_path, 5),
        timeout=30,
        zone=None,
    )
    commands.forget(None, {"chat": {"id": 5}, "message_id": 10}, "alice")
    commands.forget(None, {"chat": {"id": 6}, "message_id": 11}, "bob")
    alice, bob = asked.requests
    assert [r["timeout"] for r in asked.requests] == [30, 30]
    assert alice["request_id"] == alice["payload"].request_id and alice["topic"] == Topics().gallery_cmd
    alice["on_timeout"]()
    bob["on_answer"](GalleryResult(request_id=bob["request_id"], op="delete_label", ok=True, removed=1))
    assert said.messages == [
        (5, "⌛ No answer from the recognizer for forgetting alice (is it running?)", 10),
        (6, "🗑 Forgetting bob: done, 1 enrollment removed.", 11),
    ]


# ------------------------------------------------------------------------------- parsing, settings
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/train Alice Smith", ("train", "Alice Smith")),
        ("/Train@homesec_bot  bob ", ("train", "bob")),
        ("/status", ("status", "")),
        ("hello", None),
        ("/", None),
    ],
)
def test_parse_command(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_command(text) == expected


def test_the_flat_spool_keys_still_work_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    old = NotifierSettings.model_validate({"spool_max_items": 7, "spool_max_bytes": 3 * 1024 * 1024})
    assert (old.spool.max_items, old.spool.max_mb, old.spool.max_bytes) == (7, 3.0, 3 * 1024 * 1024)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("notifier.spool_max_bytes is deprecated" in w and "notifier.spool.max_mb" in w for w in warned)
    new = NotifierSettings.model_validate({"spool": {"max_mb": 1.5}, "spool_max_items": 9})
    assert (new.spool.max_items, new.spool.max_mb) == (9, 1.5)
    assert NotifierSettings().spool.max_bytes == 200 * 1024 * 1024


def test_the_token_comes_from_the_section_or_its_file(tmp_path: Path) -> None:
    assert telegram_token(NotifierSettings()) is None
    assert telegram_token(NotifierSettings(token=SecretStr("1:abc"))) == "1:abc"
    (tmp_path / "token").write_text("2:def\n")
    assert telegram_token(NotifierSettings(token_file=tmp_path / "token")) == "2:def"
    with pytest.raises(ConfigError, match=r"notifier\.token_file"):
        telegram_token(NotifierSettings(token_file=tmp_path / "missing"))


def test_largest_photo_is_picked() -> None:
    sizes = [{"file_id": "s", "width": 90, "height": 60}, {"file_id": "l", "width": 1280, "height": 853}]
    assert largest_photo({"photo": list(reversed(sizes))}) == "l"
    assert largest_photo({"text": "no photo"}) is None


def test_settings_validate_zone_and_default_alert_chats() -> None:
    s = NotifierSettings(allowed_chat_ids=[1, 2])
    assert s.alert_chats == [1, 2]
    assert NotifierSettings(allowed_chat_ids=[1, 2], alert_chat_ids=[-100]).alert_chats == [-100]
    assert NotifierSettings(allowed_chat_ids="1, -1002").alert_chats == [1, -1002]
    assert NotifierSettings(alert_chat_ids="[5]").alert_chats == [5]
    with pytest.raises(ValidationError):
        NotifierSettings(allowed_chat_ids="me")
    with pytest.raises(ValidationError, match="unknown time zone"):
        NotifierSettings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="extra"):
        NotifierSettings(tokn="x")  # type: ignore[call-arg]


def test_a_second_stranger_within_the_cooldown_is_news_the_same_one_is_not() -> None:
    now = [0.0]
    g = Grouper(60, lambda: now[0])
    assert g.admit("door", "ev1", Verdict.UNKNOWN, frozenset({"7"})).send
    now[0] = 10
    assert not g.admit("door", "ev2", Verdict.UNKNOWN, frozenset({"7"})).send  # visitor 7 again
    assert not g.admit("door", "ev3", Verdict.UNKNOWN).send  # no visitor id: cannot tell, grouped
    assert g.admit("door", "ev4", Verdict.UNKNOWN, frozenset({"8"})).send  # someone else
    assert not g.admit("door", "ev5", Verdict.UNKNOWN, frozenset({"7", "8"})).send


def test_caption_names_the_visitor_and_how_often_they_came() -> None:
    face = Face(box=(0, 0, 9, 9), score=0.9, label=None, similarity=0.21, closest="alice",
                visitor="7", visitor_seen_week=3)  # fmt: skip
    alert = Alert(
        camera="door",
        event_id="e",
        seq=0,
        verdict=Verdict.UNKNOWN,
        faces=[face],
        snapshot_ts="2026-11-22T04:30:12.101Z",
    )
    caption = build_caption(alert)
    assert "unknown visitor 7, seen 3 times this week, closest: alice (0.21)" in caption
