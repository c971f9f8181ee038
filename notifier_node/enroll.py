"""Teaching the recognizer from the chat: `/train <name>` on a photo or as a reply to an alert, and the
alert's "Enroll this person" button, which asks for the name with a ForceReply prompt."""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from typing import Any

from homesec.bus import Bus
from homesec.contract import ContractError, GalleryCommand, TrainRequest, check_label

from .delivery import ENROLL_PREFIX
from .replies import PendingRequests, Replier
from .store import AlertStore
from .telegram import BotApi, TelegramError

log = logging.getLogger(__name__)


def largest_photo(message: dict[str, Any]) -> str | None:
    sizes = [p for p in message.get("photo") or [] if isinstance(p, dict) and p.get("file_id")]
    if not sizes:
        return None
    best = max(sizes, key=lambda p: (p.get("width", 0) * p.get("height", 0), p.get("file_size", 0)))
    return str(best["file_id"])


class Enroller:
    def __init__(
        self, bus: Bus, replier: Replier, pending: PendingRequests, alerts: AlertStore, reply_timeout: float
    ) -> None:
        self.bus = bus
        self.replier = replier
        self.pending = pending
        self.alerts = alerts
        self.reply_timeout = reply_timeout
        self._prompts: OrderedDict[tuple[int, int], str] = OrderedDict()  # name prompt -> alert photo key
        self._lock = threading.Lock()

    def answer_prompt(self, msg: dict[str, Any], text: str) -> bool:
        """Train from the alert whose "Who is this?" prompt `msg` answers; False if it answers none."""
        chat, reply = msg["chat"]["id"], msg.get("reply_to_message") or {}
        with self._lock:  # one answer per prompt
            key = self._prompts.pop((chat, reply.get("message_id", -1)), None)
        if key is None:
            return False
        visitor = self.alerts.visitor(key)
        if visitor is not None and visitor.isdigit():  # a recurring visitor: enroll all their faces at once
            self._name_visitor(chat, msg["message_id"], text, int(visitor))
        else:
            self._train_from(chat, msg["message_id"], text, self.alerts.jpeg(key), largest=True)
        return True

    def _name_visitor(self, chat: int, mid: int, name: str, visitor: int) -> None:
        try:
            cmd = GalleryCommand(op="name_visitor", visitor=visitor, label=check_label(name))
        except (ContractError, ValueError) as exc:
            self.replier.say(chat, f"❌ {exc}", reply_to=mid)
            return
        self.pending.add(
            cmd.request_id, chat, mid, f"naming visitor {visitor} {cmd.label}", self.reply_timeout
        )
        self.bus.publish(self.bus.topics.gallery_cmd, cmd)
        log.info("chat %s: naming visitor %d %r", chat, visitor, cmd.label)

    def train(self, api: BotApi, msg: dict[str, Any], arg: str) -> None:
        chat, mid = msg["chat"]["id"], msg["message_id"]
        reply = msg.get("reply_to_message") or {}
        jpeg: bytes | None = None
        if (file_id := largest_photo(msg)) is None and reply:
            key = self.alerts.key_for(chat, reply.get("message_id", -1))
            jpeg = self.alerts.jpeg(key) if key else None
            file_id = None if jpeg else largest_photo(reply)
        if jpeg is None and file_id is None:
            self.replier.say(
                chat, "Send /train <name> as the caption of a photo, or as a reply to a photo.", reply_to=mid
            )
            return
        if file_id is not None:
            try:
                jpeg = api.download_file(file_id)
            except TelegramError as exc:
                self.replier.say(
                    chat, f"❌ Could not fetch the photo from Telegram: {exc.description}", reply_to=mid
                )
                return
        self._train_from(chat, mid, arg, jpeg, largest=file_id is None)

    def _train_from(self, chat: int, mid: int, name: str, jpeg: bytes | None, *, largest: bool) -> None:
        if jpeg is None:
            self.replier.say(
                chat, "That alert photo is no longer kept; send a photo with /train <name>.", reply_to=mid
            )
            return
        try:
            req = TrainRequest(
                label=check_label(name),
                image_b64=base64.b64encode(jpeg).decode(),
                largest=largest,
                source="telegram",
            )
        except (ContractError, ValueError) as exc:
            self.replier.say(chat, f"❌ {exc}", reply_to=mid)
            return
        self.pending.add(req.request_id, chat, mid, f"training {req.label}", self.reply_timeout)
        self.bus.publish(self.bus.topics.train, req)
        log.info("chat %s: training %r (%d bytes)", chat, req.label, len(jpeg))

    # -- inline buttons
    def button(self, cb: dict[str, Any], chat: int) -> None:
        """An allowed chat pressed an alert's Enroll button: ask for the name."""
        message = cb.get("message") or {}
        data = str(cb.get("data") or "")
        key = data.removeprefix(ENROLL_PREFIX) if data.startswith(ENROLL_PREFIX) else None
        if key is None or self.alerts.jpeg(key) is None:
            self.replier.answer_callback(str(cb.get("id")), "That alert photo is no longer kept.")
            return
        self.replier.answer_callback(str(cb.get("id")), "Reply with the name")

        def remember(sent: dict[str, Any]) -> None:
            with self._lock:
                self._prompts[(chat, int(sent.get("message_id", 0)))] = key
                while len(self._prompts) > 100:
                    self._prompts.popitem(last=False)

        self.replier.say(
            chat,
            "Who is this? Reply to this message with their name.",
            reply_to=message.get("message_id"),
            markup={"force_reply": True, "input_field_placeholder": "Name"},
            on_sent=remember,
        )
