"""`/search` in the chat: when was this person here? (issue 7, docs/search.md)

Sent as the caption of a photo, or as a reply to a photo or an alert, it publishes a SearchRequest for
the photo's largest face; the recognizer answers from its event archive on `search_result`, and the
answer goes back to the chat: "Seen 3 times: <local time> at <camera> (similarity), ...".
"""

from __future__ import annotations

import base64
import logging
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from homesec.bus import Bus, Message
from homesec.contract import SearchRequest, SearchResult, parse

from .caption import local_time
from .enroll import largest_photo
from .replies import PendingRequests, Replier
from .settings import NotifierSettings
from .store import AlertStore
from .telegram import BotApi, TelegramError

log = logging.getLogger(__name__)

SHOWN = 10  # sightings listed in the answer (the most recent)
USAGE = "Send /search as the caption of a photo, or as a reply to a photo or an alert: I tell you when that person was seen."


def format_result(result: SearchResult, zone: tzinfo | None, shown: int = SHOWN) -> str:
    if not result.ok:
        return f"❌ Search failed: {result.reason or 'refused'}"
    if not result.hits:
        return "🔎 Not seen in the event archive."
    n = len(result.hits)
    recent = sorted(result.hits, key=lambda h: h.ts, reverse=True)[:shown]
    lines = [f"🔎 Seen {n} time{'s' if n != 1 else ''}" + (f" (the {shown} latest):" if n > shown else ":")]
    lines += [f"• {local_time(h.ts, zone)} at {h.camera} ({h.similarity:.2f})" for h in recent]
    return "\n".join(lines)


class FaceSearch:
    """The `/search` command and its answers (registered by the Bot)."""

    def __init__(
        self,
        bus: Bus,
        replier: Replier,
        pending: PendingRequests,
        alerts: AlertStore,
        settings: NotifierSettings,
    ) -> None:
        self.bus = bus
        self.replier = replier
        self.pending = pending
        self.alerts = alerts
        self.timeout = settings.reply_timeout_s
        self.zone: tzinfo | None = ZoneInfo(settings.timezone) if settings.timezone else None
        bus.subscribe(bus.topics.search_result, self.on_result)

    def command(self, api: BotApi, msg: dict[str, Any], arg: str) -> None:
        chat, mid = msg["chat"]["id"], msg["message_id"]
        try:
            jpeg = self._photo(api, msg)
        except TelegramError as exc:
            self.replier.say(
                chat, f"❌ Could not fetch the photo from Telegram: {exc.description}", reply_to=mid
            )
            return
        if jpeg is None:
            self.replier.say(chat, USAGE, reply_to=mid)
            return
        req = SearchRequest(image_b64=base64.b64encode(jpeg).decode())
        self.pending.add(req.request_id, chat, mid, "searching the archive", self.timeout)
        self.bus.publish(self.bus.topics.search_cmd, req)
        log.info("chat %s: face search (%d bytes)", chat, len(jpeg))

    def _photo(self, api: BotApi, msg: dict[str, Any]) -> bytes | None:
        """The photo of the message, else of the message it replies to (an alert's original JPEG)."""
        if (file_id := largest_photo(msg)) is not None:
            return api.download_file(file_id)
        reply = msg.get("reply_to_message") or {}
        if not reply:
            return None
        key = self.alerts.key_for(msg["chat"]["id"], reply.get("message_id", -1))
        if key and (jpeg := self.alerts.jpeg(key)) is not None:
            return jpeg
        file_id = largest_photo(reply)
        return api.download_file(file_id) if file_id is not None else None

    def on_result(self, msg: Message) -> None:
        result = parse(SearchResult, msg.payload)
        p = self.pending.pop(result.request_id)
        if p is None:
            return  # someone else's search (the CLI, another notifier) or timed out already
        self.replier.say(p.chat, format_result(result, self.zone), reply_to=p.reply_to)
