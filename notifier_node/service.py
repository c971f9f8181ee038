"""NotifierService: alerts from the recognizer -> policy -> Telegram (or the outbox), plus the bot.

Threads: the bus worker runs the handlers below (alert policy, first send attempt, state updates);
`notifier-delivery` drains the spool; `notifier-bot` long-polls for commands; `notifier-replies`
sends what the bot says. None of them waits on another.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import tzinfo
from zoneinfo import ZoneInfo

from homesec.bus import Bus, Message
from homesec.config import Config, telegram_token
from homesec.contract import (
    Alert,
    ArmCommand,
    ArmedState,
    Availability,
    GalleryResult,
    GallerySummary,
    TrainResult,
    Verdict,
    new_id,
    parse,
    parse_meta,
)

from .bot import Bot
from .delivery import Deliverer
from .photo import check_jpeg
from .policy import Grouper, RateLimiter, visitors_of
from .replies import PendingRequests, Replier
from .store import ArmedStore, OffsetStore
from .telegram import BotApi

log = logging.getLogger(__name__)


class NotifierService:
    def __init__(self, config: Config, bus: Bus) -> None:
        self.config = config
        self.settings = s = config.notifier
        self.bus = bus
        self.zone: tzinfo | None = ZoneInfo(s.timezone) if s.timezone else None
        token = telegram_token(config)
        self.api_factory = (
            None
            if not token
            else lambda: BotApi(
                token, s.base_url, connect_timeout=s.connect_timeout_s, read_timeout=s.request_timeout_s
            )
        )
        clock_fn = time.monotonic
        self.limiter = RateLimiter(s.chat_interval_s, clock_fn)
        self.grouper = Grouper(s.cooldown_s, clock_fn)
        self.pending = PendingRequests(clock_fn)
        data = config.data_dir
        self.deliverer = Deliverer(s, data, bus, self.api_factory, self.grouper, self.limiter, self.zone)
        self._armed_store = ArmedStore(data / "notifier" / "armed.json", s.default_armed)
        self._armed = self._armed_store.load()
        self._nodes: dict[str, str] = {}
        self._labels: dict[str, int] | None = None
        self._lock = threading.Lock()
        self.replier: Replier | None = None
        self.bot: Bot | None = None
        if self.api_factory is not None:
            self.replier = Replier(self.api_factory, self.limiter, self.pending, retry_s=s.retry_min_s)
            self.bot = Bot(
                self.api_factory, s, bus, self, self.replier, self.pending,
                self.deliverer.alerts, OffsetStore(data / "notifier" / "updates.json"),
            )  # fmt: skip
        t = bus.topics
        bus.subscribe(t.all_alerts, self.on_alert)
        bus.subscribe(t.armed_cmd, self.on_arm_command)
        bus.subscribe(t.all_available, self.on_available)
        bus.subscribe(t.gallery, self.on_gallery)
        bus.subscribe(t.train_result, self.on_train_result)
        bus.subscribe(t.gallery_result, self.on_gallery_result)

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
        if self.replier is not None and self.bot is not None:
            self.replier.start()
            self.bot.start()

    def stop(self) -> None:
        if self.bot is not None:
            self.bot.stop()
        self.deliverer.stop()
        if self.replier is not None:
            self.replier.stop()

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
        alert = parse_meta(Alert, msg.user_properties)
        check_jpeg(msg.payload)
        if alert.requested:  # a /snapshot or `homesec capture`: the asker wants the photo, whatever it shows
            self.deliverer.deliver(alert, msg.payload, msg.topic, new_id())
            return
        if alert.verdict == Verdict.KNOWN:
            log.debug("alert %s is for a known face: not sent", alert.event_id)
            return
        if alert.verdict == Verdict.NO_FACE and not self.settings.alert_on_no_face:
            log.debug("no-face alert %s: off in config", alert.event_id)
            return
        if not self.armed().armed:
            log.info("disarmed: alert %s/%s not sent", alert.camera, alert.event_id)
            return
        admission = self.grouper.admit(alert.camera, alert.event_id, alert.verdict, visitors_of(alert))
        if not admission.send:
            log.info(
                "alert %s/%s grouped (%d photos of this visit)", alert.camera, alert.event_id, admission.count
            )
            self.deliverer.follow_up(admission.group, admission.count)
            return
        self.deliverer.deliver(alert, msg.payload, msg.topic, admission.group)

    def on_arm_command(self, msg: Message) -> None:
        cmd = parse(ArmCommand, msg.payload)
        self.set_armed(cmd.armed, cmd.by)

    def on_available(self, msg: Message) -> None:
        prefix, suffix = self.bus.topics.prefix + "/", "/available"
        node = msg.topic.removeprefix(prefix).removesuffix(suffix)
        word = msg.payload.decode(errors="replace").strip()
        if word not in {a.value for a in Availability}:
            log.debug("odd availability %r on %s", word, msg.topic)
        with self._lock:
            self._nodes[node] = word

    def on_gallery(self, msg: Message) -> None:
        summary = parse(GallerySummary, msg.payload)
        with self._lock:
            self._labels = dict(summary.labels)

    def on_train_result(self, msg: Message) -> None:
        result = parse(TrainResult, msg.payload)
        p = self.pending.pop(result.request_id)
        if p is None or self.replier is None:
            return  # someone else's request (the CLI, another notifier) or timed out already
        if result.ok:
            quality = "" if result.quality is None else f", quality {result.quality:.2f}"
            text = f"✅ Enrolled {result.label} (enrollment #{result.enrollment_id}{quality})."
        else:
            text = f"❌ Could not enroll {result.label or ''}: {result.reason or 'refused'}"
        self.replier.say(p.chat, text, reply_to=p.reply_to)

    def on_gallery_result(self, msg: Message) -> None:
        result = parse(GalleryResult, msg.payload)
        p = self.pending.pop(result.request_id)
        if p is None or self.replier is None:
            return
        if result.ok and result.op == "name_visitor":
            text = f"✅ {p.what[:1].upper() + p.what[1:]}: {result.enrolled} photos of them enrolled."
        elif result.ok:
            plural = "s" if result.removed != 1 else ""
            text = f"🗑 {p.what[:1].upper() + p.what[1:]}: done, {result.removed} enrollment{plural} removed."
        else:
            text = f"❌ {p.what} failed: {result.reason or 'refused'}"
        self.replier.say(p.chat, text, reply_to=p.reply_to)
