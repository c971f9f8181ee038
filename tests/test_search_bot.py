"""The bot's `/search`: a photo (caption or reply, or an alert) becomes a SearchRequest, and the
recognizer's answer comes back to the chat with local times. Real HTTP Bot API stand-in, LocalBus."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.bus import Message
from homesec.contract import SearchHit, SearchRequest, SearchResult, parse
from homesec.requests import send_answer
from notifier_node.recognizer_commands import search_answer as format_result
from tests.fake_telegram import FakeTelegram, jpeg_bytes, say, serve_fake, the_first_alert, wait_text
from tests.helpers import LocalBus
from tests.test_notifier_delivery import Harness, make_settings

HITS = [
    SearchHit(event_id="e1", camera="door", ts="2026-11-20T18:02:11.000Z", similarity=0.71, box=(1, 2, 3, 4)),
    SearchHit(
        event_id="e2", camera="garden", ts="2026-11-21T07:30:00.000Z", similarity=0.55, box=(1, 2, 3, 4)
    ),
]


class Archive:
    """Plays the recognizer: answers every search with HITS (or a refusal), as it does: on the result
    topic and on the request's response topic."""

    def __init__(self, bus: LocalBus) -> None:
        self.bus = bus
        self.requests: list[SearchRequest] = []
        self.refuse: str | None = None
        bus.subscribe(bus.topics.search_cmd, self._on_search)

    def _on_search(self, msg: Message) -> None:
        req = parse(SearchRequest, msg.payload)
        self.requests.append(req)
        ok = self.refuse is None
        result = SearchResult(request_id=req.request_id, ok=ok, reason=self.refuse, hits=HITS if ok else [])
        send_answer(self.bus, msg, result, self.bus.topics.search_result)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    yield from serve_fake()


@pytest.fixture
def bot(tmp_path: Path, fake: FakeTelegram) -> Iterator[tuple[Harness, Archive]]:
    bus = LocalBus("notifier/main")
    archive = Archive(bus)
    h = Harness(tmp_path / "data", make_settings(fake.url, timezone="Europe/Paris"), bus)
    yield h, archive
    h.close()


def test_search_from_a_photo_caption_answers_with_local_times(
    bot: tuple[Harness, Archive], fake: FakeTelegram
) -> None:
    _, archive = bot
    photo = jpeg_bytes(640, 480)
    say(fake, "", caption="/search", photo=fake.add_photo(photo))
    text = wait_text(fake, "Seen 2 times")
    assert text.splitlines() == [
        "🔎 Seen 2 times:",
        "• 2026-11-21 08:30:00 CET at garden (0.55)",  # the latest first, in the chat's time zone
        "• 2026-11-20 19:02:11 CET at door (0.71)",
    ]
    (req,) = archive.requests
    assert base64.b64decode(req.image_b64) == photo


def test_search_as_a_reply_to_an_alert_uses_its_archived_face_and_relays_refusals(
    bot: tuple[Harness, Archive], fake: FakeTelegram
) -> None:
    h, archive = bot
    h.alert()
    archive.refuse = "no face 0 in archived snapshot ev1/0"
    say(fake, "/search", reply_to_message=the_first_alert(fake))
    assert "no face 0" in wait_text(fake, "Search failed")
    (req,) = archive.requests  # the clean archived face, not the alert's boxed photo
    assert req.image_b64 is None and (req.event_id, req.seq, req.face) == ("ev1", 0, 0)
    say(fake, "/search")
    wait_text(fake, "as the caption of a photo")
    assert len(archive.requests) == 1


def test_format_result_limits_and_empty() -> None:
    many = SearchResult(request_id="r", ok=True, hits=HITS * 6)
    text = format_result(many, None, shown=3)
    assert text.startswith("🔎 Seen 12 times (the 3 latest):") and len(text.splitlines()) == 4
    assert format_result(SearchResult(request_id="r", ok=True), None) == "🔎 Not seen in the event archive."
