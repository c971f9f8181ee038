"""The Telegram bot: a getUpdates long-polling thread that turns chat commands into bus messages.

Only chats in `allowed_chat_ids` are obeyed; any other chat gets one refusal an hour, then silence, on
a sender thread of its own, so a flood from strangers never delays the household's answers. Everything
the bot says goes through those sender threads, so a slow Telegram never stalls command handling.
The household commands (status, arming, snapshots, labels) are answered here; those that ask the
recognizer live in `recognizer_commands`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from homesec.bus import Bus
from homesec.contract import ArmedState, CaptureCommand, ContractError, Role, check_id, split_node

from .policy import Strangers, backoff_delay
from .recognizer_commands import RecognizerCommands
from .replies import Replier
from .settings import NotifierSettings
from .store import OffsetStore
from .telegram import BotApi, PermanentError, TelegramError

log = logging.getLogger(__name__)

HELP = """🏠 homesec bot
/status – armed state, nodes online, people known
/arm, /disarm – switch alerts on or off
/snapshot [camera] – take a photo now
/labels – people the recognizer knows
/forget <name> – remove a person from the gallery
/train <name> – as the caption of a photo, or as a reply to an alert photo
/search – as the caption of a photo, or as a reply to one: when was this person seen?
/not <name> – as the caption of a photo, or as a reply to one: that person is not <name>
Alerts carry an "Enroll this person" button: tap it and reply with the name, and a "Not X" button
for each face they named: tap it when that was someone else."""

Command = Callable[[BotApi, dict[str, Any], str], None]


class Household(Protocol):
    """What the bot asks the rest of the notifier (NotifierService implements it)."""

    def armed(self) -> ArmedState: ...
    def set_armed(self, armed: bool, by: str) -> None: ...
    def nodes(self) -> dict[str, str]: ...
    def labels(self) -> dict[str, int] | None: ...
    def queue_info(self) -> str: ...


def _worth_a_line(ignored: int) -> bool:
    """Log the 1st, 10th, 100th... ignored message: a flood leaves a few lines, not one per message."""
    return ignored > 0 and str(ignored).rstrip("0") == "1"


def parse_command(text: str) -> tuple[str, str] | None:
    """('train', 'Alice') for '/train@homesec_bot Alice'; None when `text` is not a command."""
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    return (name, rest.strip()) if name else None


class Bot:
    def __init__(
        self,
        api_factory: Callable[[], BotApi],
        settings: NotifierSettings,
        bus: Bus,
        household: Household,
        replier: Replier,
        recognizer_commands: RecognizerCommands,
        offsets: OffsetStore,
        *,
        refusals: Replier,
        strangers: Strangers,
    ) -> None:
        self.settings = settings
        self.refusals = refusals
        self.strangers = strangers
        self.bus = bus
        self.household = household
        self.replier = replier
        self.recognizer_commands = recognizer_commands
        self.offsets = offsets
        self._api_factory = api_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.offset = offsets.load()
        self.commands: dict[str, Command] = {
            "start": self._help,
            "help": self._help,
            "status": self._status,
            "arm": lambda api, m, a: self._arm(m, True),
            "disarm": lambda api, m, a: self._arm(m, False),
            "snapshot": self._snapshot,
            "labels": self._labels,
            "forget": recognizer_commands.forget,
            "train": recognizer_commands.train,
            "search": recognizer_commands.search,
            "not": recognizer_commands.not_label,
        }

    # -- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notifier-bot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        # A long poll may stay open up to poll_timeout_s: do not hold shutdown for it. The thread is a
        # daemon and handles nothing more once stopped (unconfirmed updates are fetched again next run).
        if self._thread is not None:
            self._thread.join(timeout=0.2)

    def _run(self) -> None:
        api = self._api_factory()
        failures = 0
        while not self._stop.is_set():
            try:
                updates = api.get_updates(self.offset, self.settings.poll_timeout_s)
            except TelegramError as exc:
                failures += 1
                delay = backoff_delay(failures, self.settings.retry_min_s, self.settings.retry_max_s)
                level = logging.ERROR if isinstance(exc, PermanentError) else logging.WARNING
                log.log(level, "getUpdates failed (%s); retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
                continue
            failures = 0
            for update in updates:
                if self._stop.is_set():
                    break
                self.offset = max(self.offset or 0, int(update.get("update_id", 0)) + 1)
                self.handle(api, update)
            if updates:
                self._save_offset()
        api.close()

    def _save_offset(self) -> None:
        try:
            self.offsets.save(self.offset or 0)
        except OSError as exc:  # a full disk must not stop the bot; a restart may see these updates again
            log.warning("could not save the getUpdates offset: %s", exc)

    # -- dispatch
    def handle(self, api: BotApi, update: dict[str, Any]) -> None:
        try:
            if isinstance(cb := update.get("callback_query"), dict):
                self._callback(cb)
            elif isinstance(msg := update.get("message"), dict):
                self._message(api, msg)
        except Exception:  # one odd update must not stop the bot
            log.exception("could not handle update %s", update.get("update_id"))

    def allowed(self, chat: int | None) -> bool:
        return chat is not None and chat in self.settings.allowed_chat_ids

    def _refuse(self, chat: int, who: dict[str, Any] | None) -> None:
        refusal = self.strangers.refuse(chat)
        if not refusal.answer:
            if _worth_a_line(refusal.ignored):
                log.warning("chat %s: %d messages ignored since its refusal", chat, refusal.ignored)
            return
        name = (who or {}).get("username") or (who or {}).get("first_name") or "?"
        log.warning(
            "refused a message from chat %s (%s): not in notifier.allowed_chat_ids; %s",
            chat,
            name,
            f"{refusal.ignored} more were ignored before this one"
            if refusal.ignored
            else "the next hour's messages from it are ignored",
        )
        self.refusals.say(
            chat, f"⛔ This is a private bot. Your chat id is {chat}; ask its owner to allow it."
        )

    def _message(self, api: BotApi, msg: dict[str, Any]) -> None:
        chat = (msg.get("chat") or {}).get("id")
        if not isinstance(chat, int):
            return
        if not self.allowed(chat):
            self._refuse(chat, msg.get("from"))
            return
        text = str(msg.get("text") or msg.get("caption") or "").strip()
        command = parse_command(text)
        if command is None and self.recognizer_commands.answer_prompt(msg, text):
            return
        if command is None:
            if text:
                self.replier.say(
                    chat, "I only understand commands. /help lists them.", reply_to=msg.get("message_id")
                )
            return
        handler = self.commands.get(command[0])
        if handler is None:
            self.replier.say(chat, f"Unknown command /{command[0]}. /help lists them.")
            return
        handler(api, msg, command[1])

    # -- commands
    def _help(self, api: BotApi, msg: dict[str, Any], arg: str) -> None:
        self.replier.say(msg["chat"]["id"], HELP)

    def _status(self, api: BotApi, msg: dict[str, Any], arg: str) -> None:
        state = self.household.armed()
        lines = [f"{'🛡 Armed' if state.armed else '💤 Disarmed'} (by {state.by})"]
        nodes = self.household.nodes()
        lines += [f"{'🟢' if s == 'online' else '🔴'} {n}: {s}" for n, s in sorted(nodes.items())] or [
            "No node has reported yet."
        ]
        labels = self.household.labels()
        lines.append("Gallery: unknown yet" if labels is None else f"Gallery: {len(labels)} people")
        lines.append(self.household.queue_info())
        self.replier.say(msg["chat"]["id"], "\n".join(lines))

    def _arm(self, msg: dict[str, Any], armed: bool) -> None:
        who = (msg.get("from") or {}).get("username") or msg["chat"]["id"]
        self.household.set_armed(armed, f"telegram:{who}")
        self.replier.say(msg["chat"]["id"], "🛡 Armed: alerts are on." if armed else "💤 Disarmed: no alerts.")

    def _snapshot(self, api: BotApi, msg: dict[str, Any], arg: str) -> None:
        chat = msg["chat"]["id"]
        try:
            cameras = [check_id(arg, "camera")] if arg else self._online_cameras()
        except ContractError as exc:
            self.replier.say(chat, f"❌ {exc}")
            return
        if not cameras:
            self.replier.say(chat, "No camera is online. Try /snapshot <camera>.")
            return
        for cam in cameras:
            self.bus.publish(self.bus.topics.camera_cmd_capture(cam), CaptureCommand())
        self.replier.say(
            chat, f"📸 Capture requested from {', '.join(cameras)}; unknown faces come back as alerts."
        )

    def _online_cameras(self) -> list[str]:
        nodes = [(split_node(n), s) for n, s in self.household.nodes().items()]
        return sorted(node_id for (role, node_id), s in nodes if role == Role.CAMERA and s == "online")

    def _labels(self, api: BotApi, msg: dict[str, Any], arg: str) -> None:
        labels = self.household.labels()
        if labels is None:
            text = "The recognizer has not published its gallery yet."
        elif not labels:
            text = "No one is enrolled yet. Send a photo with the caption /train <name>."
        else:
            text = "Known people:\n" + "\n".join(
                f"• {k} ({n} photo{'s' if n != 1 else ''})" for k, n in sorted(labels.items())
            )
        self.replier.say(msg["chat"]["id"], text)

    # -- inline buttons
    def _callback(self, cb: dict[str, Any]) -> None:
        chat = ((cb.get("message") or {}).get("chat") or {}).get("id")
        if not self.allowed(chat):
            if self.strangers.refuse(("button", chat)).answer:
                log.warning(
                    "refused a button press from %s in chat %s", (cb.get("from") or {}).get("id"), chat
                )
                self.refusals.answer_callback(str(cb.get("id")), "⛔ Not allowed")
            return
        assert isinstance(chat, int)
        self.recognizer_commands.button(cb, chat)
