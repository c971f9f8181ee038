"""Alert delivery that loses nothing.

The bus handler tries Telegram first. When Telegram is unreachable (network, timeout, 5xx, 429) the
alert goes to a disk spool *before the handler returns*, i.e. before the MQTT ack, and a delivery
thread drains the spool in order with backoff. While the spool is non-empty new alerts queue behind it.
Alerts Telegram refuses for good (400/401/403) are parked on disk and reported on the error topic.
Delivery is at-least-once: a send that timed out after Telegram got it is sent again.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from homesec.bus import Bus
from homesec.contract import Alert, Delivered, Verdict, parse
from homesec.spool import DiskSpool, SpoolItem

from .caption import build_caption
from .photo import fit_photo
from .policy import Grouper, RateLimiter, backoff_delay, visitors_of
from .settings import NotifierSettings
from .store import AlertStore, alert_stem, write_pair
from .telegram import BotApi, PermanentError, RateLimited, RetryableError

log = logging.getLogger(__name__)

ENROLL_PREFIX = "enroll:"


def enroll_keyboard(key: str) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": "👤 Enroll this person", "callback_data": ENROLL_PREFIX + key}]]}


@dataclass
class _Sent:
    alert: Alert
    key: str
    messages: list[tuple[int, int]] = field(default_factory=list)  # (chat, message_id)


class Deliverer:
    def __init__(
        self,
        settings: NotifierSettings,
        data_dir: Path,
        bus: Bus,
        api_factory: Callable[[], BotApi] | None,
        grouper: Grouper,
        limiter: RateLimiter,
        zone: tzinfo | None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.grouper = grouper
        self.limiter = limiter
        self.zone = zone
        self._rng = rng or random.Random()
        self._api_factory = api_factory
        self.outbox = data_dir / "outbox"
        self.parked = data_dir / "notifier" / "parked"
        self.alerts = AlertStore(data_dir / "notifier" / "alerts", settings.alerts_kept)
        self.spool = DiskSpool(
            data_dir / "spool" / "notifier", settings.spool.max_items, settings.spool.max_bytes
        )
        self._inline_api = api_factory() if api_factory else None
        self._sent: OrderedDict[str, _Sent] = OrderedDict()
        self._edits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def telegram(self) -> bool:
        return self._api_factory is not None and bool(self.settings.alert_chats)

    # -- lifecycle
    def start(self) -> None:
        if self._api_factory is None:
            return
        self._thread = threading.Thread(target=self._run, name="notifier-delivery", daemon=True)
        self._thread.start()
        if len(self.spool):
            log.info("%d alerts waiting in the spool from an earlier run", len(self.spool))

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.request_timeout_s + self.settings.connect_timeout_s + 2)
        if self._inline_api is not None:
            self._inline_api.close()

    # -- called by the bus handler (one thread)
    def deliver(self, alert: Alert, jpeg: bytes, topic: str, group: str) -> None:
        if not self.telegram:
            self._to_outbox(alert, jpeg, group)
            return
        unknown = visitors_of(alert)  # the alert photo names its visitor only when it shows just one
        key = self.alerts.add(jpeg, visitor=next(iter(unknown)) if len(unknown) == 1 else None)
        assert self._inline_api is not None
        queued = 0
        for chat in self.settings.alert_chats:
            meta = {
                "chat": chat,
                "alert": alert.model_dump(mode="json"),
                "group": group,
                "key": key,
                "topic": topic,
            }
            if queued or len(self.spool):
                self.spool.put(jpeg, meta)  # keep order: nothing overtakes what is already waiting
                queued += 1
                continue
            try:
                self._send(self._inline_api, chat, alert, jpeg, group, key)
            except RetryableError as exc:
                if isinstance(exc, RateLimited):
                    self.limiter.push_back(chat, exc.retry_after)
                log.warning("Telegram unavailable (%s): alert %s spooled", exc, alert.event_id)
                self.spool.put(jpeg, meta)
                queued += 1
            except Exception as exc:  # PermanentError, or a photo Pillow cannot read: park, report
                if not isinstance(exc, PermanentError):
                    log.exception("alert %s cannot be sent", alert.event_id)
                self._park(SpoolItem("inline", jpeg, meta), exc)
        if queued:
            self._wake.set()

    def follow_up(self, group: str, count: int) -> None:
        """Another photo folded into `group`: refresh the '+N more photos' line of what was sent."""
        with self._lock:
            if group not in self._sent:
                return  # not sent yet: the caption will carry the count when it is
            self._edits[group] = count
        self._wake.set()

    # -- sending
    def _send(self, api: BotApi, chat: int, alert: Alert, jpeg: bytes, group: str, key: str) -> None:
        self.limiter.wait_turn(chat, self._stop)
        grouped = self.grouper.count(group)
        markup = enroll_keyboard(key) if alert.verdict == Verdict.UNKNOWN else None
        photo = fit_photo(jpeg, self.settings.max_photo_bytes)
        msg = api.send_photo(chat, photo, build_caption(alert, self.zone, grouped), reply_markup=markup)
        message_id = int(msg.get("message_id", 0))
        self.alerts.link(chat, message_id, key)
        with self._lock:
            sent = self._sent.setdefault(group, _Sent(alert, key))
            sent.messages.append((chat, message_id))
            while len(self._sent) > 64:
                self._sent.popitem(last=False)
        log.info("alert %s/%s sent to chat %s (%d photos)", alert.camera, alert.event_id, chat, grouped)
        self.bus.publish(
            self.bus.topics.delivered,
            Delivered(
                event_id=alert.event_id,
                camera=alert.camera,
                channel="telegram",
                chat_id=str(chat),
                grouped=grouped,
            ),
        )

    def _to_outbox(self, alert: Alert, jpeg: bytes, group: str) -> None:
        caption = build_caption(alert, self.zone)
        meta = {"alert": alert.model_dump(mode="json"), "caption": caption, "group": group}
        path = write_pair(self.outbox, alert_stem(alert.camera, alert.event_id), jpeg, meta)
        log.info("alert %s/%s written to %s", alert.camera, alert.event_id, path)
        self.bus.publish(
            self.bus.topics.delivered,
            Delivered(event_id=alert.event_id, camera=alert.camera, channel="outbox"),
        )

    def _park(self, item: SpoolItem, exc: Exception) -> None:
        meta = dict(item.meta, error=str(exc))
        alert = item.meta.get("alert") or {}
        stem = alert_stem(str(alert.get("camera", "unknown")), str(alert.get("event_id", item.id)))
        path = write_pair(self.parked, f"{stem}_{item.meta.get('chat', 'x')}", item.payload, meta)
        self.bus.report_error(
            "telegram_refused" if isinstance(exc, PermanentError) else "alert_unsendable",
            f"chat {item.meta.get('chat')}: {exc}; alert parked in {path}",
            str(item.meta.get("topic", self.bus.topics.all_alerts)),
        )

    # -- the delivery thread
    def _run(self) -> None:
        assert self._api_factory is not None
        api = self._api_factory()
        attempt = 0
        while not self._stop.is_set():
            try:
                attempt = self._step(api, attempt)
            except Exception:  # a disk error must not end delivery for good: the spool would only grow
                log.exception("alert delivery failed; retrying in %.1f s", self.settings.retry_max_s)
                self._stop.wait(self.settings.retry_max_s)
        api.close()

    def _step(self, api: BotApi, attempt: int) -> int:
        item = self.spool.peek()
        if item is None:
            self._apply_edits(api)
            if self._wake.wait(1.0):
                self._wake.clear()
            return attempt
        return self._drain_one(api, item, attempt)

    def _drain_one(self, api: BotApi, item: SpoolItem, attempt: int) -> int:
        """Send the oldest spooled alert; return the new failure count."""
        try:
            chat, alert = int(item.meta["chat"]), parse(Alert, json.dumps(item.meta["alert"]))
            self._send(api, chat, alert, item.payload, str(item.meta["group"]), str(item.meta["key"]))
        except RateLimited as exc:
            self.limiter.push_back(int(item.meta["chat"]), exc.retry_after)
            log.warning(
                "Telegram rate limit: waiting %.1f s (%d alerts waiting)", exc.retry_after, len(self.spool)
            )
            return attempt + 1
        except RetryableError as exc:
            delay = backoff_delay(
                attempt + 1, self.settings.retry_min_s, self.settings.retry_max_s, self._rng
            )
            log.warning(
                "Telegram unavailable (%s): retry in %.1f s (%d alerts waiting)", exc, delay, len(self.spool)
            )
            self._stop.wait(delay)
            return attempt + 1
        except Exception as exc:  # PermanentError, or a record we cannot read: park it, never spin on it
            if not isinstance(exc, PermanentError):
                log.exception("unusable spooled alert %s", item.id)
            self._park(item, exc)
        self.spool.remove(item.id)
        return 0

    def _apply_edits(self, api: BotApi) -> None:
        with self._lock:
            edits, self._edits = self._edits, {}
            jobs = [(self._sent[g], n) for g, n in edits.items() if g in self._sent]
        for sent, count in jobs:  # best effort: the alert itself went out already
            caption = build_caption(sent.alert, self.zone, count)
            markup = enroll_keyboard(sent.key) if sent.alert.verdict == Verdict.UNKNOWN else None
            for chat, message_id in sent.messages:
                try:
                    self.limiter.wait_turn(chat, self._stop)
                    api.edit_caption(chat, message_id, caption, markup)
                except (RetryableError, PermanentError) as exc:
                    log.info("could not update the caption of alert message %s: %s", message_id, exc)
