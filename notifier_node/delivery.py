"""Alert delivery that loses nothing and never holds up the bus.

The bus handler only makes an alert safe: one record per chat in a disk spool (or, without Telegram, a
file in the outbox), synced before the handler returns, i.e. before the MQTT ack. The delivery thread
sends the spool in order, with backoff while Telegram is unreachable, so a slow or hung Telegram never
delays the bus worker (arming, training and search answers). Alerts Telegram refuses for good
(400/401/403) are parked on disk and reported on the error topic. Delivery to Telegram is at-least-once
from the spool: a send that timed out after Telegram got it is sent again.
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
from homesec.contract import Alert, ContractError, Delivered, Face, RecognitionResult, Verdict, parse
from homesec.files import write_atomic
from homesec.spool import DiskSpool, SpoolItem

from .alert_faces import face_to_enroll, named_faces
from .caption import build_caption, correction_caption, revised_caption, with_count
from .handled import HandledKeys, alert_key, revision_key
from .photo import PhotoError, fit_photo
from .policy import VERDICT_RANK, Grouper, RateLimiter, backoff_delay, visitors_of
from .settings import NotifierSettings
from .store import AlertStore, OutboxRetention, alert_stem, safe_name, write_pair
from .telegram import BotApi, PermanentError, RateLimited, RetryableError

log = logging.getLogger(__name__)

ENROLL_PREFIX = "enroll:"
SENT = "#sent"  # suffix of the handled key of an alert Telegram has taken for a chat
NOT_PREFIX = "not:"
CALLBACK_DATA_MAX = 64  # bytes, Telegram's limit
KEPT = 64  # alerts (and visits) whose messages are remembered for caption edits

VisitKey = tuple[str, str]  # camera, event id


def enroll_keyboard(key: str) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": "👤 Enroll this person", "callback_data": ENROLL_PREFIX + key}]]}


def alert_keyboard(alert: Alert, key: str) -> dict[str, Any] | None:
    """Enroll for an unknown face; "Not X" for each face the alert named (it may be a look-alike)."""
    rows = enroll_keyboard(key)["inline_keyboard"] if alert.verdict == Verdict.UNKNOWN else []
    rows += not_buttons(alert.event_id, alert.seq, alert.faces)
    return {"inline_keyboard": rows} if rows else None


def not_buttons(event_id: str, seq: int, faces: list[Face]) -> list[list[dict[str, str]]]:
    """A "Not X" button for each face of frame `seq` that was named."""
    rows = []
    for index, face in enumerate(faces):
        data = not_label_data(event_id, seq, index)
        if face.label is not None and len(data.encode()) <= CALLBACK_DATA_MAX:
            rows.append([{"text": f"🙅 Not {face.name or face.label}", "callback_data": data}])
    return rows


def not_label_data(event_id: str, seq: int, face: int) -> str:
    """The "Not X" button's callback data: the archived face (the recognizer knows the name it gave)."""
    return f"{NOT_PREFIX}{seq}:{face}:{event_id}"


@dataclass(frozen=True)
class _Revision:
    """A later picture of a visit already alerted, as the caption of the photo sent for it shows it;
    with `photo`, a better frame of the visit that replaces the photo (`key`: its AlertStore key)."""

    camera: str
    event_id: str
    revision: int
    verdict: Verdict
    caption: str
    markup: dict[str, Any] | None
    photo: bytes | None = field(default=None, repr=False)
    key: str | None = None


@dataclass
class _Sent:
    alert: Alert  # the alert the photo was sent for
    key: str  # its photo's key in the AlertStore (in the outbox: its file stem)
    messages: list[tuple[int, int]] = field(default_factory=list)  # (chat, message_id)
    revised: _Revision | None = None  # the latest revision its caption shows
    photo_seq: int | None = None  # the frame its photo shows (or will once edited); None: the alert's


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
        handled: HandledKeys,
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
        self.outbox_retention = OutboxRetention(self.outbox, settings.outbox)
        self.parked = data_dir / "notifier" / "parked"
        self.alerts = AlertStore(data_dir / "notifier" / "alerts", settings.alerts_kept)
        self.handled = handled
        self.spool = DiskSpool(
            data_dir / "spool" / "notifier", settings.spool.max_items, settings.spool.max_bytes
        )
        self._sent: OrderedDict[str, _Sent] = OrderedDict()  # by group
        self._visits: OrderedDict[VisitKey, str] = OrderedDict()  # the group each alerted visit is in
        self._edits: dict[str, int] = {}  # group -> photos counted into it
        self._revisions: dict[VisitKey, _Revision] = {}  # the latest revision waiting to be shown
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # What a watcher (a test, a status line) can read of the delivery thread: sending right now, and
        # how many sends have failed so far.
        self.busy = False
        self.failed_attempts = 0

    @property
    def telegram(self) -> bool:
        return self._api_factory is not None and bool(self.settings.alert_chats)

    # -- lifecycle
    def start(self) -> None:
        if self._api_factory is None:
            self.outbox_retention.start()  # what an earlier run left
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

    # -- called by the bus handler (one thread)
    def deliver(self, alert: Alert, jpeg: bytes, topic: str, group: str) -> None:
        """Make the alert safe on disk for every chat it goes to; raises OSError when it cannot be.
        A retry after a partial failure spools only the chats not spooled yet."""
        if not self.telegram:
            self._to_outbox(alert, jpeg, group)
            return
        chats = [c for c in self.settings.alert_chats if alert_key(alert, c) not in self.handled]
        if not chats:
            return
        key = self._keep_photo(alert, jpeg)
        self._track(alert, key, group)
        for chat in chats:
            meta = {
                "chat": chat,
                "alert": alert.model_dump(mode="json"),
                "group": group,
                "key": key,
                "topic": topic,
            }
            self.spool.put(jpeg, meta)
            self.handled.add(alert_key(alert, chat))
            self._wake.set()

    def _keep_photo(self, alert: Alert, jpeg: bytes) -> str:
        """Keep the alert's photo, and which archived faces it shows, for its buttons and replies."""
        unknown = visitors_of(alert)  # the alert photo names its visitor only when it shows just one
        visitor = next(iter(unknown)) if len(unknown) == 1 else None
        face = face_to_enroll(alert)  # enrolling from the alert uses the archived, unboxed face
        ref = None if face is None else face.encode()
        return self.alerts.add(jpeg, visitor=visitor, face=ref, named=named_faces(alert))

    def follow_up(self, group: str, count: int) -> None:
        """Another photo folded into `group`: refresh the '+N more photos' line of what was sent."""
        with self._lock:
            if group not in self._sent or not self._sent[group].messages:
                return  # not sent yet: the caption will carry the count when it is
            self._edits[group] = count
        self._wake.set()

    def revise(self, alert: Alert, jpeg: bytes) -> bool:
        """A later revision of a visit already alerted (a new unknown face, a better photo of its
        stranger): shown by editing the message sent, its caption and, when the revision shows another
        frame, its photo (`editMessageMedia`; in the outbox: the photo replaced, the caption in a file
        beside it). False when nobody was alerted of this visit, or when the revision deserves a photo of
        its own (a face after a no-face alert)."""
        shown = self._shown(alert.camera, alert.event_id)
        if shown is None or VERDICT_RANK[alert.verdict] > VERDICT_RANK[shown.alert.verdict]:
            return False
        photo, key = self._new_photo(shown, alert, jpeg)
        caption, markup = revised_caption(alert, self.zone), alert_keyboard(alert, key)
        revision = _Revision(
            alert.camera, alert.event_id, alert.revision, alert.verdict, caption, markup, photo, key
        )
        self._show(revision)
        return True

    def _new_photo(self, shown: _Sent, alert: Alert, jpeg: bytes) -> tuple[bytes | None, str]:
        """The photo a revision puts in place of the one shown (None: the same frame) and the AlertStore
        key its buttons and replies then mean. A photo still waiting to be shown is kept."""
        with self._lock:
            seq = shown.alert.seq if shown.photo_seq is None else shown.photo_seq
            waiting = self._revisions.get((alert.camera, alert.event_id))
            if alert.seq != seq:
                shown.photo_seq = alert.seq
        if alert.seq != seq:  # (the outbox keeps no AlertStore: nothing there replies to a photo)
            return jpeg, self._keep_photo(alert, jpeg) if self.telegram else shown.key
        if waiting is not None and waiting.photo is not None and waiting.key is not None:
            return waiting.photo, waiting.key
        return None, shown.key

    def correct(self, result: RecognitionResult) -> None:
        """A later frame of a visit alerted as a stranger named everyone: the alert says who it was."""
        shown, visit = self._shown(result.camera, result.event_id), result.visit
        if shown is None or visit is None or visit.revision is None:
            return  # nobody was told of this visit: nothing to take back
        caption = correction_caption(shown.alert, result, self.zone)
        markup = {"inline_keyboard": not_buttons(result.event_id, result.seq, result.faces)}
        self._show(_Revision(result.camera, result.event_id, visit.revision, visit.verdict, caption, markup))

    def _track(self, alert: Alert, key: str, group: str) -> None:
        """Remember which group (so which messages) shows this visit, for its later revisions."""
        with self._lock:
            self._sent.setdefault(group, _Sent(alert, key))
            self._visits[(alert.camera, alert.event_id)] = group
            for kept in (self._sent, self._visits):
                while len(kept) > KEPT:
                    kept.popitem(last=False)

    def _shown(self, camera: str, event_id: str) -> _Sent | None:
        """What was sent for this visit: its group's first alert, or the outbox file written for it."""
        if not self.telegram:
            return self._in_outbox(camera, event_id)
        with self._lock:
            group = self._visits.get((camera, event_id))
            return None if group is None else self._sent.get(group)

    def _in_outbox(self, camera: str, event_id: str) -> _Sent | None:
        for path in sorted(self.outbox.glob(f"*_{safe_name(camera)}_{safe_name(event_id)}.json")):
            try:
                alert = parse(Alert, json.dumps(json.loads(path.read_bytes())["alert"]))
            except (OSError, ValueError, KeyError, TypeError, ContractError):
                continue
            if (alert.camera, alert.event_id) == (camera, event_id):
                return _Sent(alert, path.name.removesuffix(".json"))
        return None

    def _show(self, revision: _Revision) -> None:
        """Queue the caption edit (Telegram), or write the revision beside the alert (outbox)."""
        visit = (revision.camera, revision.event_id)
        if self.telegram:
            with self._lock:
                waiting = self._revisions.get(visit)
                if waiting is None or waiting.revision < revision.revision:
                    self._revisions[visit] = revision
            self._wake.set()
            return
        done = revision_key(revision.camera, revision.event_id, revision.revision, "outbox")
        shown = self._in_outbox(*visit)
        if done in self.handled or shown is None:
            return
        meta = {
            "camera": revision.camera,
            "event_id": revision.event_id,
            "revision": revision.revision,
            "verdict": revision.verdict.value,
            "caption": revision.caption,
            "revises": f"{shown.key}.json",
        }
        if revision.photo is not None:  # a better frame of the visit: the alert's photo is replaced
            write_atomic(self.outbox / f"{shown.key}.jpg", revision.photo)
            meta["photo"] = f"{shown.key}.jpg"
        path = self.outbox / f"{shown.key}.r{revision.revision}.json"
        write_atomic(path, json.dumps(meta, indent=2).encode())
        self.handled.add(done)
        log.info("visit %s/%s revision %d written to %s", *visit, revision.revision, path)

    # -- sending
    def _send(self, api: BotApi, chat: int, alert: Alert, jpeg: bytes, group: str, key: str) -> None:
        self.limiter.wait_turn(chat, self._stop)
        grouped = self.grouper.count(group)
        markup = alert_keyboard(alert, key)
        caption = build_caption(alert, self.zone, grouped)
        try:
            photo = fit_photo(jpeg, self.settings.max_photo_bytes)
        except PhotoError as exc:  # the household still hears of it; the photo is parked for inspection
            api.send_message(chat, f"{caption}\n⚠️ The photo could not be sent: {exc}")
            raise
        msg = api.send_photo(chat, photo, caption, reply_markup=markup)
        message_id = int(msg.get("message_id", 0))
        try:
            self.alerts.link(chat, message_id, key)
        except OSError as exc:  # sent: failing here would send it again. Only reply-to-train loses it.
            log.warning("alert %s sent, but which message shows it is not saved: %s", alert.event_id, exc)
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
        if alert_key(alert, "outbox") in self.handled:
            return
        caption = build_caption(alert, self.zone)
        meta = {"alert": alert.model_dump(mode="json"), "caption": caption, "group": group}
        path = write_pair(self.outbox, alert_stem(alert.camera, alert.event_id), jpeg, meta)
        self.handled.add(alert_key(alert, "outbox"))
        self.outbox_retention.written(path)
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
        self.busy = True
        try:
            failures = self._drain_one(api, item, attempt)
        finally:
            self.busy = False
        if failures:
            self.failed_attempts += 1
        return failures

    def _drain_one(self, api: BotApi, item: SpoolItem, attempt: int) -> int:
        """Send the oldest spooled alert; return the new failure count."""
        try:
            chat, alert = int(item.meta["chat"]), parse(Alert, json.dumps(item.meta["alert"]))
            sent = alert_key(alert, chat) + SENT
            if sent in self.handled:  # sent just before a crash or a full disk kept it in the spool
                log.info("alert %s already sent to chat %s: not sent again", alert.event_id, chat)
            else:
                self._send(api, chat, alert, item.payload, str(item.meta["group"]), str(item.meta["key"]))
                self._remember(sent)
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
            if isinstance(exc, PhotoError):
                log.error("alert %s sent without its photo: %s", item.id, exc)
            elif not isinstance(exc, PermanentError):
                log.exception("unusable spooled alert %s", item.id)
            self._park(item, exc)
        self.spool.remove(item.id)
        return 0

    def _remember(self, sent: str) -> None:
        """Record a send, so a crash before the spool forgets it does not send it twice."""
        try:
            self.handled.add(sent)
        except OSError as exc:  # the spool record goes anyway: better one duplicate than a send loop
            log.warning("could not record a sent alert (%s): a restart now may send it again", exc)

    def _apply_edits(self, api: BotApi) -> None:
        with self._lock:
            edits, self._edits = self._edits, {}
            revisions, self._revisions = self._revisions, {}
            jobs = [(self._sent[g], n) for g, n in edits.items() if g in self._sent]
            groups = {v: g for v in revisions if (g := self._visits.get(v)) in self._sent and g is not None}
            shows = [(self._sent[groups[v]], r) for v, r in revisions.items() if v in groups]
        for sent, revision in shows:
            self._edit_revision(api, sent, revision)
        for sent, count in jobs:  # best effort: the alert itself went out already
            if sent.revised is not None:
                caption, markup = with_count(sent.revised.caption, count), sent.revised.markup
            else:
                caption, markup = (
                    build_caption(sent.alert, self.zone, count),
                    alert_keyboard(sent.alert, sent.key),
                )
            for chat, message_id in sent.messages:
                try:
                    self.limiter.wait_turn(chat, self._stop)
                    api.edit_caption(chat, message_id, caption, markup)
                except (RetryableError, PermanentError) as exc:
                    log.info("could not update the caption of alert message %s: %s", message_id, exc)

    def _edit_revision(self, api: BotApi, sent: _Sent, revision: _Revision) -> None:
        """Edit each message that shows the visit, once per revision and chat (the handled keys say which
        were edited, across redeliveries); an edit Telegram could not take now is tried again later."""
        if sent.revised is None or sent.revised.revision < revision.revision:
            sent.revised = revision
        for chat, message_id in sent.messages:
            done = revision_key(revision.camera, revision.event_id, revision.revision, chat)
            if done in self.handled:
                continue
            try:
                self.limiter.wait_turn(chat, self._stop)
                self._edit_message(api, chat, message_id, revision)
            except RetryableError as exc:
                if isinstance(exc, RateLimited):
                    self.limiter.push_back(chat, exc.retry_after)
                log.info("caption of alert message %s not updated yet: %s", message_id, exc)
                with self._lock:
                    self._revisions.setdefault((revision.camera, revision.event_id), revision)
                continue
            except PermanentError as exc:  # the message was deleted, or already says this
                log.info("could not update the caption of alert message %s: %s", message_id, exc)
            self._remember(done)

    def _edit_message(self, api: BotApi, chat: int, message_id: int, revision: _Revision) -> None:
        """The revision's caption, with its photo in place of the one shown when it brings one."""
        photo = revision.photo
        if photo is not None:
            try:
                photo = fit_photo(photo, self.settings.max_photo_bytes)
            except PhotoError as exc:  # the caption still says what changed
                log.warning("the better photo of visit %s cannot be sent: %s", revision.event_id, exc)
                photo = None
        if photo is None or revision.key is None:
            api.edit_caption(chat, message_id, revision.caption, revision.markup)
            return
        api.edit_photo(chat, message_id, photo, revision.caption, revision.markup)
        try:  # a reply to the alert (/train, /not, /search) now means the face of the new photo
            self.alerts.link(chat, message_id, revision.key)
        except OSError as exc:
            log.warning("photo of alert message %s replaced, but not saved which it is: %s", message_id, exc)
