"""The bot's commands that ask the recognizer, and how its answers read in the chat.

`/train <name>` on a photo or as a reply to an alert; `/forget <name>`; `/search` on a photo or as a
reply to one ("when was this person seen?", docs/search.md); the alert's "Enroll this person" button,
which asks for the name with a ForceReply prompt and trains from the alert (or, for a recurring
visitor, enrolls all of their archived faces); the alert's "Not X" button and `/not <name>` on a photo
or as a reply to one: that face was wrongly named, do not name it (or its look-alikes) so again; the
answer's "Undo" button takes that back. Each request goes out through the Requester; the answer, or the
lack of one within `reply_timeout_s`, goes back to the chat that asked.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import tzinfo
from functools import partial
from typing import Any, TypeVar

from homesec.bus import PayloadTooLarge
from homesec.contract import (
    ContractError,
    DeleteLabel,
    EnrollFace,
    GalleryResult,
    NameVisitor,
    NotLabel,
    Payload,
    SearchRequest,
    SearchResult,
    Topics,
    TrainRequest,
    TrainResult,
    UndoNot,
    check_name,
)
from homesec.requests import Requester

from .alert_faces import FaceRef, decode_ref, enroll_answer
from .caption import local_time
from .delivery import ENROLL_PREFIX, NOT_PREFIX
from .photo import ChatPhoto, PhotoError, fit_photo, photo_of
from .replies import Replier
from .store import AlertStore
from .telegram import BotApi, TelegramError

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Payload)
ChatMessage = dict[str, Any]  # a Telegram message, as getUpdates gives it

SHOWN = 10  # sightings listed in a search answer (the most recent)
UNDO_NOT_PREFIX = "undo_not:"  # callback data of the "Undo" button under a "not X" answer
TRAIN_USAGE = "Send /train <name> as the caption of a photo, or as a reply to a photo."
NOT_USAGE = "Send /not <name> as the caption of a photo, or as a reply to one: that person is not <name>."
SEARCH_USAGE = "Send /search as the caption of a photo, or as a reply to a photo or an alert: I tell you when that person was seen."


def train_answer(result: TrainResult) -> str:
    if result.ok:
        quality = "" if result.quality is None else f", quality {result.quality:.2f}"
        if result.notice:  # "already enrolled": the same photo again, nothing added
            return f"✅ {result.name or result.label}: {result.notice} (enrollment #{result.enrollment_id})."
        return f"✅ Enrolled {result.name or result.label} (enrollment #{result.enrollment_id}{quality})."
    return f"❌ Could not enroll {result.name or result.label or ''}: {result.reason or 'refused'}"


def gallery_answer(result: GalleryResult, what: str) -> str:
    """`what` says what was asked, e.g. "forgetting bob"."""
    if not result.ok:
        return f"❌ {what} failed: {result.reason or 'refused'}"
    done = what[:1].upper() + what[1:]
    if result.op == "name_visitor":
        return f"✅ {done}: {result.enrolled} photos of them enrolled."
    if result.op == "not_label":
        return f"✅ {done}: noted, that face will not be given that name again."
    if result.op == "undo_not":
        return f"↩️ {done}: taken back, that face may be given that name again."
    plural = "s" if result.removed != 1 else ""
    return f"🗑 {done}: done, {result.removed} enrollment{plural} removed."


def search_answer(result: SearchResult, zone: tzinfo | None, shown: int = SHOWN) -> str:
    if not result.ok:
        return f"❌ Search failed: {result.reason or 'refused'}"
    if not result.hits:
        return "🔎 Not seen in the event archive."
    n = len(result.hits)
    recent = sorted(result.hits, key=lambda h: h.ts, reverse=True)[:shown]
    lines = [f"🔎 Seen {n} time{'s' if n != 1 else ''}" + (f" (the {shown} latest):" if n > shown else ":")]
    lines += [f"• {local_time(h.ts, zone)} at {h.camera} ({h.similarity:.2f})" for h in recent]
    return "\n".join(lines)


def undo_keyboard(result: GalleryResult) -> dict[str, Any] | None:
    """The "Undo" button under a "not X" answer: it takes back the negative just kept."""
    if result.op != "not_label" or not result.ok or result.negative_id is None:
        return None
    data = f"{UNDO_NOT_PREFIX}{result.negative_id}"
    return {"inline_keyboard": [[{"text": "↩️ Undo", "callback_data": data}]]}


class RecognizerCommands:
    def __init__(
        self,
        requester: Requester,
        topics: Topics,
        replier: Replier,
        alerts: AlertStore,
        *,
        timeout: float,
        zone: tzinfo | None,
        photo_max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        """`photo_max_bytes`: larger photos are re-encoded smaller before they go to the recognizer."""
        self.requester = requester
        self.photo_max_bytes = photo_max_bytes
        self.topics = topics
        self.replier = replier
        self.alerts = alerts
        self.timeout = timeout
        self.zone = zone
        self._prompts: OrderedDict[tuple[int, int], str] = OrderedDict()  # name prompt -> alert photo key
        self._lock = threading.Lock()

    def _ask(
        self,
        topic: str,
        request: TrainRequest | DeleteLabel | NameVisitor | NotLabel | EnrollFace | UndoNot | SearchRequest,
        answer_model: type[A],
        answer_text: Callable[[A], str],
        chat: int,
        reply_to: int,
        what: str,
        markup: Callable[[A], dict[str, Any] | None] = lambda _: None,
    ) -> None:
        """Send `request`; its answer (with the buttons `markup` gives it), or a word that none came,
        goes back to `chat`."""
        try:
            self.requester.request_async(
                topic,
                request,
                answer_model,
                request_id=request.request_id,
                timeout=self.timeout,
                on_answer=lambda answer: self.replier.say(
                    chat, answer_text(answer), reply_to=reply_to, markup=markup(answer)
                ),
                on_timeout=lambda: self.replier.say(
                    chat, f"⌛ No answer from the recognizer for {what} (is it running?)", reply_to=reply_to
                ),
            )
        # The bus refused to carry it: say so, it is not the recognizer's fault.
        except PayloadTooLarge as exc:
            self.replier.say(
                chat, f"❌ Too large to send to the recognizer for {what}: {exc}", reply_to=reply_to
            )

    def _photo(self, api: BotApi, msg: ChatMessage, usage: str) -> ChatPhoto | None:
        """The photo `msg` is about; None (the chat told why) when there is none or it cannot be had."""
        chat, mid = msg["chat"]["id"], msg["message_id"]
        try:
            photo = photo_of(api, msg, self.alerts)
        except TelegramError as exc:
            self.replier.say(
                chat, f"❌ Could not fetch the photo from Telegram: {exc.description}", reply_to=mid
            )
            return None
        if photo is None:
            self.replier.say(chat, usage, reply_to=mid)
            return None
        try:  # a photo the recognizer can take: the bus carries at most mqtt.max_payload_mb
            return ChatPhoto(fit_photo(photo.jpeg, self.photo_max_bytes), photo.from_alert)
        except PhotoError as exc:
            mb = len(photo.jpeg) / (1024 * 1024)
            self.replier.say(chat, f"❌ That photo cannot be used ({mb:.1f} MB): {exc}", reply_to=mid)
            return None

    # -- commands
    def train(self, api: BotApi, msg: ChatMessage, arg: str) -> None:
        if (ref := self._alert_face(msg)) is not None:  # a reply to an alert: its clean archived face
            self._enroll_face(msg["chat"]["id"], msg["message_id"], arg, ref)
        elif (photo := self._photo(api, msg, TRAIN_USAGE)) is not None:
            self._train(msg["chat"]["id"], msg["message_id"], arg, photo.jpeg, largest=photo.from_alert)

    def forget(self, api: BotApi, msg: ChatMessage, arg: str) -> None:
        chat = msg["chat"]["id"]
        try:
            cmd = DeleteLabel(label=check_name(arg))
        except (ContractError, ValueError) as exc:
            self.replier.say(chat, f"Usage: /forget <name>. {exc}")
            return
        what = f"forgetting {cmd.label}"
        answer = partial(gallery_answer, what=what)
        self._ask(self.topics.gallery_cmd, cmd, GalleryResult, answer, chat, msg["message_id"], what)

    def search(self, api: BotApi, msg: ChatMessage, arg: str) -> None:
        """`/search` on a photo, or as a reply to one; as a reply to an alert, the alert's clean
        archived face is searched for (its photo has the faces boxed)."""
        chat, mid = msg["chat"]["id"], msg["message_id"]
        if (ref := self._alert_face(msg)) is not None:
            req = SearchRequest(event_id=ref.event_id, seq=ref.seq, face=ref.face)
            log.info("chat %s: face search for archived face %s", chat, ref.encode())
        elif (photo := self._photo(api, msg, SEARCH_USAGE)) is not None:
            req = SearchRequest(image_b64=base64.b64encode(photo.jpeg).decode())
            log.info("chat %s: face search (%d bytes)", chat, len(photo.jpeg))
        else:
            return
        answer = partial(search_answer, zone=self.zone)
        self._ask(self.topics.search_cmd, req, SearchResult, answer, chat, mid, "searching the archive")

    def not_label(self, api: BotApi, msg: ChatMessage, arg: str) -> None:
        """`/not <name>` on a photo: the face in it is not <name>."""
        chat, mid = msg["chat"]["id"], msg["message_id"]
        try:
            label = check_name(arg)
        except (ContractError, ValueError) as exc:
            self.replier.say(chat, f"Usage: /not <name>. {exc}", reply_to=mid)
            return
        if (ref := self._alert_face(msg, named=label)) is not None:  # a reply to an alert: its clean face
            cmd = NotLabel(label=label, event_id=ref.event_id, seq=ref.seq, face=ref.face)
            self._correct(cmd, chat, mid, f"not {label}")
        elif (photo := self._photo(api, msg, NOT_USAGE)) is not None:
            cmd = NotLabel(label=label, image_b64=base64.b64encode(photo.jpeg).decode())
            self._correct(cmd, chat, mid, f"not {label}")

    def _correct(self, cmd: NotLabel | UndoNot, chat: int, reply_to: int | None, what: str) -> None:
        """Ask for a "not X" (its answer offers "Undo") or for taking one back."""
        answer = partial(gallery_answer, what=what)
        topic = self.topics.gallery_cmd
        self._ask(topic, cmd, GalleryResult, answer, chat, reply_to or 0, what, markup=undo_keyboard)
        log.info("chat %s: %s", chat, what)

    def _undo_button(self, cb: dict[str, Any], chat: int, data: str) -> None:
        """The "Undo" button under a "not X" answer: the negative it kept is forgotten."""
        negative = data.removeprefix(UNDO_NOT_PREFIX)
        if not negative.isdigit() or int(negative) < 1:
            self.replier.answer_callback(str(cb.get("id")), "That button is not one of mine.")
            return
        self.replier.answer_callback(str(cb.get("id")), "Taking it back")
        message_id = (cb.get("message") or {}).get("message_id")
        self._correct(UndoNot(negative_id=int(negative)), chat, message_id, "undoing the correction")

    def _not_button(self, cb: dict[str, Any], chat: int, data: str) -> None:
        """The alert's "Not X" button: the archived face it names is not the person it was named."""
        seq, _, rest = data.removeprefix(NOT_PREFIX).partition(":")
        face, _, event_id = rest.partition(":")
        if not (seq.isdigit() and face.isdigit() and event_id):
            self.replier.answer_callback(str(cb.get("id")), "That button is not one of mine.")
            return
        self.replier.answer_callback(str(cb.get("id")), "Noted")
        cmd = NotLabel(event_id=event_id, seq=int(seq), face=int(face))
        message_id = (cb.get("message") or {}).get("message_id")
        self._correct(cmd, chat, message_id, "correcting the name")

    # -- the Enroll button and its name prompt
    def button(self, cb: dict[str, Any], chat: int) -> None:
        """An allowed chat pressed an alert's button: Enroll asks for the name; Not X corrects one."""
        message = cb.get("message") or {}
        data = str(cb.get("data") or "")
        if data.startswith(NOT_PREFIX):
            self._not_button(cb, chat, data)
            return
        if data.startswith(UNDO_NOT_PREFIX):
            self._undo_button(cb, chat, data)
            return
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

    def answer_prompt(self, msg: ChatMessage, text: str) -> bool:
        """Train from the alert whose "Who is this?" prompt `msg` answers; False if it answers none."""
        chat, reply = msg["chat"]["id"], msg.get("reply_to_message") or {}
        with self._lock:  # one answer per prompt
            key = self._prompts.pop((chat, reply.get("message_id", -1)), None)
        if key is None:
            return False
        visitor = self.alerts.visitor(key)
        if visitor is not None and visitor.isdigit():  # a recurring visitor: enroll all their faces at once
            self._name_visitor(chat, msg["message_id"], text, int(visitor))
            return True
        ref = decode_ref(self.alerts.face(key))
        if ref is None:  # never the boxed photo: its boxes would be enrolled as part of the face
            self.replier.say(
                chat,
                "That alert has no face I can enroll; send a photo with /train <name>.",
                reply_to=msg["message_id"],
            )
        else:
            self._enroll_face(chat, msg["message_id"], text, ref)
        return True

    def _alert_face(self, msg: ChatMessage, named: str | None = None) -> FaceRef | None:
        """The archived face of the alert `msg` replies to (None when it has a photo of its own): the
        face it gave the name `named`, else the face enrolling from it means."""
        reply = msg.get("reply_to_message") or {}
        if msg.get("photo") or not reply:
            return None
        key = self.alerts.key_for(msg["chat"]["id"], reply.get("message_id", -1))
        if key is None:
            return None
        given = self.alerts.named_face(key, named) if named is not None else None
        return decode_ref(given or self.alerts.face(key))

    # -- requests
    def _train(self, chat: int, mid: int, name: str, jpeg: bytes, *, largest: bool) -> None:
        try:
            req = TrainRequest(
                label=check_name(name),
                image_b64=base64.b64encode(jpeg).decode(),
                largest=largest,
                source="telegram",
            )
        except (ContractError, ValueError) as exc:
            self.replier.say(chat, f"❌ {exc}", reply_to=mid)
            return
        self._ask(self.topics.train, req, TrainResult, train_answer, chat, mid, f"training {req.label}")
        log.info("chat %s: training %r (%d bytes)", chat, req.label, len(jpeg))

    def _enroll_face(self, chat: int, mid: int, name: str, ref: FaceRef) -> None:
        try:
            cmd = ref.enroll(check_name(name))
        except (ContractError, ValueError) as exc:
            self.replier.say(chat, f"❌ {exc}", reply_to=mid)
            return
        answer = partial(enroll_answer, label=cmd.label)
        what = f"training {cmd.label}"
        self._ask(self.topics.gallery_cmd, cmd, GalleryResult, answer, chat, mid, what)
        log.info("chat %s: enrolling %r from archived face %s", chat, cmd.label, ref.encode())

    def _name_visitor(self, chat: int, mid: int, name: str, visitor: int) -> None:
        try:
            cmd = NameVisitor(visitor=visitor, label=check_name(name))
        except (ContractError, ValueError) as exc:
            self.replier.say(chat, f"❌ {exc}", reply_to=mid)
            return
        what = f"naming visitor {visitor} {cmd.label}"
        answer = partial(gallery_answer, what=what)
        self._ask(self.topics.gallery_cmd, cmd, GalleryResult, answer, chat, mid, what)
        log.info("chat %s: naming visitor %d %r", chat, visitor, cmd.label)
