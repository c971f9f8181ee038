"""NotifierService: alerts from the recognizer -> policy -> Telegram (or the outbox), plus the bot.

Threads: the bus worker runs the handlers below (alert policy, spooling, state updates) and never talks
to Telegram; `notifier-delivery` sends the spool; `notifier-bot` long-polls for commands; `notifier-replies`
sends what the bot says. None of them waits on another. The bot's requests to the recognizer go through
one Requester, whose answers arrive on the notifier's own reply topic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from homesec.bus import Bus, Message, RetryLater
from homesec.contract import (
    Alert,
    ArmCommand,
    ArmedState,
    Availability,
    GallerySummary,
    RecognitionResult,
    Verdict,
    new_id,
    parse,
    parse_meta,
)
from homesec.requests import Requester

from .bot import Bot
from .delivery import Deliverer
from .handled import HandledKeys, alert_key, revision_key
from .photo import check_jpeg
from .policy import Admission, Grouper, RateLimiter, Strangers, visitors_of
from .recognizer_commands import RecognizerCommands
from .replies import Replier
from .secrets import telegram_token
from .settings import NotifierSettings
from .store import ArmedStore, OffsetStore
from .telegram import BotApi

log = logging.getLogger(__name__)

REFUSAL_INTERVAL_S = 3600.0  # one "this is a private bot" per stranger per hour
REFUSALS_WAITING = 50  # refusals to strangers waiting to be sent; beyond that they are dropped


def reply_topic(bus: Bus) -> str:
    """Where the recognizer answers this notifier's requests (the ACL lets it write only under reply/)."""
    return bus.topics.reply("notifier", bus.node.replace("/", "-"))


def api_factory(settings: NotifierSettings) -> Callable[[], BotApi] | None:
    """Makes one Bot API client per thread; None without a token (alerts then go to the outbox)."""
    token = telegram_token(settings)
    if not token:
        return None
    s = settings
    return lambda: BotApi(
        token, s.base_url, connect_timeout=s.connect_timeout_s, read_timeout=s.request_timeout_s
    )


class NotifierService:
    def __init__(self, settings: NotifierSettings, data_dir: Path, bus: Bus) -> None:
        self.settings = s = settings
        self.bus = bus
        self.zone: tzinfo | None = ZoneInfo(s.timezone) if s.timezone else None
        self.api_factory = api_factory(s)
        self.limiter = RateLimiter(s.chat_interval_s, time.monotonic)
        self.grouper = Grouper(s.cooldown_s, time.monotonic)
        self.handled = HandledKeys(data_dir / "notifier" / "handled.jsonl")
        self.deliverer = Deliverer(
            s, data_dir, bus, self.api_factory, self.grouper, self.limiter, self.zone, self.handled
        )
        self._armed_store = ArmedStore(data_dir / "notifier" / "armed.json", s.default_armed)
        self._armed = self._armed_store.load()
        self._nodes: dict[str, str] = {}
        self._labels: dict[str, int] | None = None
        self._pending_admissions: dict[str, Admission] = {}  # only the bus worker touches it
        self._lock = threading.Lock()
        self.replier: Replier | None = None
        self.refusals: Replier | None = None
        self.requester: Requester | None = None
        self.bot: Bot | None = None
        if self.api_factory is not None:
            self._add_bot(self.api_factory, data_dir)
        t = bus.topics
        bus.subscribe(t.all_alerts, self.on_alert)
        bus.subscribe(t.all_results, self.on_result)
        bus.subscribe(t.armed_cmd, self.on_arm_command)
        bus.subscribe(t.all_available, self.on_available)
        bus.subscribe(t.gallery, self.on_gallery)

    def _add_bot(self, api: Callable[[], BotApi], data_dir: Path) -> None:
        """The bot, its sender thread, and the Requester that carries its questions to the recognizer."""
        s = self.settings
        self.replier = Replier(api, self.limiter, retry_s=s.retry_min_s)
        self.requester = Requester(self.bus, reply_topic(self.bus))
        commands = RecognizerCommands(
            self.requester, self.bus.topics, self.replier, self.deliverer.alerts,
            timeout=s.reply_timeout_s, zone=self.zone, photo_max_bytes=s.request_photo_bytes,
        )  # fmt: skip
        offsets = OffsetStore(data_dir / "notifier" / "updates.json")
        self.refusals = Replier(
            api, self.limiter, retry_s=s.retry_min_s, name="notifier-refusals", max_waiting=REFUSALS_WAITING
        )
        strangers = Strangers(REFUSAL_INTERVAL_S, time.monotonic)
        self.bot = Bot(
            api,
            s,
            self.bus,
            self,
            self.replier,
            commands,
            offsets,
            refusals=self.refusals,
            strangers=strangers,
        )

    # -- lifecycle
    def start(self) -> None:
        if self.api_factory is None:
            log.warning("no Telegram token (HOMESEC_TELEGRAM_TOKEN): alerts go to %s", self.deliverer.outbox)
        elif not self.settings.alert_chats:
            log.warning(
                "no chat to alert (notifier.allowed_chat_ids / alert_chat_ids): alerts go to the outbox"
            )
        self.bus.publish(self.bus.topics.armed, self._armed, retain=True)
        self.deliverer.start()
        if self.replier is not None and self.refusals is not None and self.bot is not None:
            self.replier.start()
            self.refusals.start()
            self.bot.start()

    def stop(self) -> None:
        if self.bot is not None:
            self.bot.stop()
        if self.requester is not None:
            self.requester.close()
        self.deliverer.stop()
        for replier in (self.replier, self.refusals):
            if replier is not None:
                replier.stop()

    # -- Household (what the bot reads and changes)
    def armed(self) -> ArmedState:
        with self._lock:
            return self._armed

    def set_armed(self, armed: bool, by: str) -> None:
        state = ArmedState(armed=armed, by=by)
        with self._lock:
            self._armed = state
            self._armed_store.save(state)
        log.info("%s by %s", "armed" if armed else "disarmed", by)
        self.bus.publish(self.bus.topics.armed, state, retain=True)

    def nodes(self) -> dict[str, str]:
        with self._lock:
            return dict(self._nodes)

    def labels(self) -> dict[str, int] | None:
        with self._lock:
            return None if self._labels is None else dict(self._labels)

    def queue_info(self) -> str:
        spooled = len(self.deliverer.spool)
        parked = len(list(self.deliverer.parked.glob("*.json"))) if self.deliverer.parked.exists() else 0
        return f"Alerts waiting to be sent: {spooled}; refused by Telegram (parked): {parked}"

    # -- bus handlers
    def on_alert(self, msg: Message) -> None:
        """Decide and make safe; the bus acknowledges only after this returns. A copy of an alert already
        handled (a broker redelivery, a second replica's answer) is dropped; an alert that cannot be kept
        on disk now is left unacknowledged and retried."""
        alert = parse_meta(Alert, msg.user_properties)
        check_jpeg(msg.payload)
        key = alert_key(alert)
        if key in self.handled:
            log.info("alert %s already handled: copy dropped", key)
            return
        try:
            self._handle_alert(alert, msg)
            self.handled.add(key)
        except OSError as exc:  # disk full, read-only...: not acknowledged, so it comes back
            raise RetryLater(f"alert {key} cannot be kept on disk: {exc}") from exc

    def _handle_alert(self, alert: Alert, msg: Message) -> None:
        if alert.requested:  # a /snapshot or `homesec capture`: the asker wants the photo, whatever it shows
            self.deliverer.deliver(alert, msg.payload, msg.topic, new_id())
            return
        if alert.revision and self.deliverer.revise(alert, msg.payload):  # alerted before: edit, not resend
            log.info("alert %s/%s revision %d: message updated", alert.camera, alert.event_id, alert.revision)
            return
        if alert.verdict == Verdict.KNOWN:
            log.debug("alert %s is for a known face: not sent", alert.event_id)
            return
        if alert.verdict in (Verdict.NO_FACE, Verdict.TOO_SMALL) and not self.settings.alert_on_no_face:
            log.debug("no-face alert %s: off in config", alert.event_id)
            return
        if not self.armed().armed:
            log.info("disarmed: alert %s/%s not sent", alert.camera, alert.event_id)
            return
        admission = self._admit(alert)
        if not admission.send:
            log.info(
                "alert %s/%s grouped (%d photos of this visit)", alert.camera, alert.event_id, admission.count
            )
            self.deliverer.follow_up(admission.group, admission.count)
            return
        try:
            self.deliverer.deliver(alert, msg.payload, msg.topic, admission.group)
        except OSError:  # the retry must not count this photo into its own group
            self._pending_admissions[alert_key(alert)] = admission
            while len(self._pending_admissions) > 256:
                self._pending_admissions.pop(next(iter(self._pending_admissions)))
            raise

    def _admit(self, alert: Alert) -> Admission:
        """The grouping decision; the same one again for an alert being retried."""
        earlier = self._pending_admissions.pop(alert_key(alert), None)
        if earlier is not None:
            return earlier
        return self.grouper.admit(alert.camera, alert.event_id, alert.verdict, visitors_of(alert))

    def on_result(self, msg: Message) -> None:
        """A frame's result matters here only when it corrects a visit: a later frame named everyone
        (the recognizer sends no alert for that, only the visit's new revision in its results)."""
        result = parse(RecognitionResult, msg.payload)
        visit = result.visit
        if visit is None or not visit.decided or not visit.revision or visit.verdict != Verdict.KNOWN:
            return
        key = revision_key(result.camera, result.event_id, visit.revision)
        if key in self.handled:
            return
        try:
            self.deliverer.correct(result)
            self.handled.add(key)
        except OSError as exc:
            raise RetryLater(f"correction {key} cannot be kept on disk: {exc}") from exc

    def on_arm_command(self, msg: Message) -> None:
        cmd = parse(ArmCommand, msg.payload)
        self.set_armed(cmd.armed, cmd.by)

    def on_available(self, msg: Message) -> None:
        node = self.bus.topics.node_from_available(msg.topic)
        word = msg.payload.decode(errors="replace").strip()
        if word not in {a.value for a in Availability}:
            log.debug("odd availability %r on %s", word, msg.topic)
        with self._lock:
            self._nodes[node] = word

    def on_gallery(self, msg: Message) -> None:
        summary = parse(GallerySummary, msg.payload)
        with self._lock:  # people as the household named them (`José`), not by label (`Jose`)
            self._labels = {summary.names.get(label, label): n for label, n in summary.labels.items()}
