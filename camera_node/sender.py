"""Snapshot delivery, end to end: a snapshot is done when its recognition result has been seen, not when
the broker acknowledged it.

Every snapshot goes to the disk spool first and stays there until the `recognizer/result/<camera>` for
its `(event_id, seq)` arrives. The broker's PUBACK only paces the publishing: a broker killed before it
saved its queue, a broker queue over its limit, or a recognizer replica that died holding messages all
lose PUBACKed snapshots silently, and one rule covers the three: a snapshot whose result has not come
within `confirm_timeout_s` is published again (the recognizer answers a repeat with the result it
already gave, and its alert under the same key, without a second archive record). The recognizer
answers even a snapshot it cannot process, so one published `max_attempts` times without a result, while
results for other snapshots came, is reported (`unconfirmed`) and dropped rather than kept forever
(a recognizer that is away costs no attempt). At most `max_in_flight` snapshots are
unconfirmed at a time, published in spool order, so a long backlog reaches the recognizer at the pace it
answers instead of flooding the broker's queue. The spool survives restarts: what was unconfirmed is
published again by the next run.

One thread publishes (JPEG encoding happens there too, off the frame loop); results are taken on the bus
worker thread and only free their spool records.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from camera_node.sources import to_jpeg
from homesec.bus import Bus, Message, PayloadTooLarge
from homesec.contract import (
    JPEG_CONTENT_TYPE,
    META_PROPERTY,
    ContractError,
    RecognitionResult,
    SnapshotMeta,
    meta_property,
    parse,
    parse_meta,
)
from homesec.spool import DiskSpool, SpoolItem

log = logging.getLogger(__name__)

STOP_WAIT_S = 0.5  # for the thread to finish what it does on stop, unless it waits for a PUBACK
Key = tuple[str, int]  # (event_id, seq): what a result names


@dataclass(frozen=True)
class Snapshot:
    image: NDArray[np.uint8] | bytes  # RGB array or JPEG bytes
    meta: SnapshotMeta


def key_of(item: SpoolItem) -> Key | None:
    """The `(event_id, seq)` of a spooled snapshot, None when its metadata is unusable."""
    raw = item.meta.get(META_PROPERTY)
    if not isinstance(raw, str):
        return None
    try:
        meta = parse_meta(SnapshotMeta, {META_PROPERTY: raw})
    except ContractError:
        return None
    return meta.event_id, meta.seq


class SnapshotSender:
    def __init__(
        self,
        bus: Bus,
        topic: str,
        spool: DiskSpool,
        *,
        result_topic: str,
        jpeg_quality: int = 85,
        timeout_s: float = 10.0,
        retry_s: float = 1.0,
        confirm_timeout_s: float = 30.0,
        max_in_flight: int = 20,
        max_attempts: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus, self.topic, self.spool, self.result_topic = bus, topic, spool, result_topic
        self.jpeg_quality, self.timeout_s, self.retry_s = jpeg_quality, timeout_s, retry_s
        self.confirm_timeout_s, self.max_in_flight, self._clock = confirm_timeout_s, max_in_flight, clock
        self.max_attempts = max_attempts
        self.published = 0  # counters, for logs and tests: PUBACKed publishes, repeats included
        self.republished = 0  # published again: no result within confirm_timeout_s
        self.spooled = 0  # could not go out at once (broker away, or the window full)
        self.confirmed = 0  # results seen
        self.given_up = 0  # missed max_attempts times: reported and dropped
        self._queue: queue.Queue[Snapshot | None] = queue.Queue()  # None: wake up (a result, or stop)
        self._lock = threading.Lock()
        self._storing = threading.RLock()  # one writer of the spool's tail: keeps snapshot order
        self._keys: dict[Key, str] = {}  # unconfirmed snapshots: key -> spool id
        self._sent_at: dict[str, float] = {}  # spool id -> when this run last published it
        self._misses: dict[str, int] = {}  # spool id -> timeouts while the recognizer answered others
        self._answered_at = float("-inf")  # when the last result came
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_failing = False

    def submit(self, snapshot: Snapshot) -> None:
        self._queue.put(snapshot)

    def start(self) -> None:
        self._index()
        if len(self.spool):
            log.info("%d unconfirmed snapshot(s) from an earlier run will be sent first", len(self.spool))
        self.bus.subscribe(self.result_topic, self._on_result)
        self._thread = threading.Thread(target=self._run, name="camera-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Prompt even while a publish waits for a PUBACK that will not come (a broker gone silent waits
        `timeout_s`, 10 s by default): what was published is in the spool until its result, so the ack
        is not worth waiting for. What is still in memory goes to the spool here if the thread is busy."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)
            if self._thread.is_alive():  # in publish_confirmed; it ends at its timeout, publishing no more
                self._absorb()

    @property
    def idle(self) -> bool:
        """Nothing queued in memory, nothing on disk: every snapshot's result was seen."""
        return self._queue.unfinished_tasks == 0 and len(self.spool) == 0

    @property
    def in_flight(self) -> int:
        """Published by this run and not confirmed yet."""
        with self._lock:
            return len(self._sent_at)

    # -- results (bus worker thread)
    def _on_result(self, msg: Message) -> None:
        result = parse(RecognitionResult, msg.payload)  # a bad one: ContractError, reported by the bus
        self.confirm((result.event_id, result.seq))

    def confirm(self, key: Key) -> None:
        """The result for `key` was seen: its snapshot is done (a repeat or an unknown key: nothing)."""
        with self._lock:
            item_id = self._keys.pop(key, None)
            if item_id is None:
                return
            self._sent_at.pop(item_id, None)
            self._misses.pop(item_id, None)
            self._answered_at = self._clock()
        self.spool.remove(item_id)
        self.confirmed += 1
        self._queue.put(None)  # room in the window: publish the next one now

    # -- the thread
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:  # a full disk or a bad record must not end delivery for good
                log.exception("snapshot sender failed; retrying in %.0fs", self.retry_s)
                self._stopping.wait(self.retry_s)
        self._absorb()  # stopping: whatever is still in memory goes to disk, for the next run

    def _step(self) -> None:
        try:
            snap = self._queue.get(timeout=self._wait_s())
        except queue.Empty:
            pass
        else:
            try:
                if snap is not None:
                    with self._storing:
                        self._store(snap)
            finally:
                self._queue.task_done()
        self._absorb()  # all of them on disk before publishing: order is spool order
        self._pump()

    def _wait_s(self) -> float:
        """Until the oldest unconfirmed snapshot is due again, at most `retry_s`."""
        with self._lock:
            oldest = min(self._sent_at.values(), default=None)
        if oldest is None:
            return self.retry_s
        return min(self.retry_s, max(0.01, oldest + self.confirm_timeout_s - self._clock()))

    def _store(self, snap: Snapshot) -> None:
        payload, props = to_jpeg(snap.image, self.jpeg_quality), meta_property(snap.meta)
        dropped = self.spool.dropped
        try:
            item_id = self.spool.put(payload, {META_PROPERTY: props[META_PROPERTY]})
        except OSError as exc:  # a full or failing disk: one try without the spool beats none
            self._send_unspooled(payload, props, exc)
            return
        if self.spool.dropped > dropped:
            detail = (
                f"{self.spool.dropped - dropped} unconfirmed snapshot(s) dropped, the oldest: the spool holds "
                f"{self.spool.max_items} snapshots or {self.spool.max_bytes} bytes (camera.spool); is the "
                "recognizer running?"
            )
            self.bus.report_error("spool_full", detail, self.topic)
        with self._lock:
            self._keys[(snap.meta.event_id, snap.meta.seq)] = item_id
            busy = len(self._sent_at) >= self.max_in_flight or len(self._keys) > len(self._sent_at) + 1
        if busy or not self.bus.connected:
            self.spooled += 1

    def _send_unspooled(self, payload: bytes, props: dict[str, str], exc: OSError) -> None:
        detail = f"spool {self.spool.directory} failed ({exc}); snapshot sent once, without a confirmation"
        self.bus.report_error("spool_failed", detail, self.topic)
        try:
            self.bus.publish_confirmed(
                self.topic,
                payload,
                timeout=self.timeout_s,
                user_properties=props,
                content_type=JPEG_CONTENT_TYPE,
            )
        except PayloadTooLarge:
            log.error("snapshot too large for the broker, and no spool: dropped")

    def _absorb(self) -> None:
        """Move snapshots waiting in memory to the spool's tail (keeps order, survives a crash)."""
        with self._storing:  # the thread, or `stop` while the thread waits for an ack
            while True:
                try:
                    snap = self._queue.get_nowait()
                except queue.Empty:
                    return
                try:
                    if snap is not None:
                        self._store(snap)
                finally:
                    self._queue.task_done()

    def _index(self) -> None:
        """Learn the keys of what an earlier run left unconfirmed."""
        for item_id in self.spool.ids():
            item = self.spool.get(item_id, payload=False)
            key = None if item is None else key_of(item)
            if key is None:
                log.error("spooled snapshot %s has no usable metadata; dropping it", item_id)
                self.spool.remove(item_id)
                continue
            with self._lock:
                self._keys[key] = item_id

    def _pump(self) -> None:
        """Publish what is due, in spool order: overdue repeats first, then new ones while the window
        has room."""
        while self.bus.connected and not self._stopping.is_set():
            item_id, repeat = self._next()
            if item_id is None:
                return
            if repeat and self._missed(item_id):
                self._give_up(item_id)
                continue
            item = self.spool.get(item_id)
            if item is None:  # confirmed meanwhile, dropped for room, or quarantined (the spool logs that)
                self._forget(item_id)
                continue
            if (key := key_of(item)) is None:
                log.error("spooled snapshot %s has no usable metadata; dropping it", item_id)
                self.spool.remove(item_id)
                self._forget(item_id)
                continue
            if not self._publish(item, key):
                return  # the broker is away or slow: again after retry_s
            with self._lock:
                if item_id in self._sent_at or key in self._keys:  # not confirmed meanwhile
                    self._sent_at[item_id] = self._clock()
            if repeat:
                self.republished += 1
                log.info(
                    "no result for snapshot %s #%d in %gs: published again", *key, self.confirm_timeout_s
                )

    def _next(self) -> tuple[str | None, bool]:
        """The next snapshot to publish and whether it is a repeat, or None when nothing is due."""
        ids = self.spool.ids()
        now = self._clock()
        with self._lock:
            live = set(ids)
            self._sent_at = {i: t for i, t in self._sent_at.items() if i in live}  # the spool drops
            self._keys = {k: i for k, i in self._keys.items() if i in live}  # its oldest when full
            self._misses = {i: n for i, n in self._misses.items() if i in live}
            # Only what is still unconfirmed: a record whose result just came is forgotten here before
            # its files go, and must not pass for a new snapshot in between.
            unconfirmed = set(self._keys.values())
            ids = [i for i in ids if i in unconfirmed]
            due = self.confirm_timeout_s
            overdue = next((i for i in ids if i in self._sent_at and now - self._sent_at[i] >= due), None)
            if overdue is not None:
                return overdue, True
            if len(self._sent_at) >= self.max_in_flight:
                return None, False
            return next((i for i in ids if i not in self._sent_at), None), False

    def _missed(self, item_id: str) -> bool:
        """Count a timeout of `item_id` as a miss when results for other snapshots came meanwhile (the
        recognizer is there, and answers even what it cannot process, so this one went astray); True once
        it has missed `max_attempts` times. A recognizer that is away answers nothing: waiting for it
        costs no attempt, so a long outage loses no snapshot."""
        with self._lock:
            if self._answered_at < self._sent_at.get(item_id, float("inf")):
                return False
            self._misses[item_id] = self._misses.get(item_id, 0) + 1
            return self._misses[item_id] >= self.max_attempts

    def _give_up(self, item_id: str) -> None:
        """Published `max_attempts` times without a result while the recognizer answered others:
        another try will not help; reported, not kept forever."""
        with self._lock:
            key = next((k for k, i in self._keys.items() if i == item_id), None)
        name = f"{key[0]} #{key[1]}" if key else item_id
        detail = (
            f"snapshot {name}: no recognition result after {self.max_attempts} attempt(s), "
            f"{self.confirm_timeout_s:g}s apart, while other snapshots were answered; dropped"
        )
        log.error("%s", detail)
        self.bus.report_error("unconfirmed", detail, self.topic)
        self.given_up += 1
        self.spool.remove(item_id)
        self._forget(item_id)

    def _forget(self, item_id: str) -> None:
        with self._lock:
            self._sent_at.pop(item_id, None)
            self._misses.pop(item_id, None)
            self._keys = {k: i for k, i in self._keys.items() if i != item_id}

    def _publish(self, item: SpoolItem, key: Key) -> bool:
        """True when the snapshot went out (or can never go: too large, then it is dropped)."""
        try:
            ok = self.bus.publish_confirmed(
                self.topic,
                item.payload,
                timeout=self.timeout_s,
                user_properties={META_PROPERTY: item.meta[META_PROPERTY]},
                content_type=JPEG_CONTENT_TYPE,
            )
        except PayloadTooLarge as exc:  # retrying cannot help; keeping it would hold the window forever
            self.bus.report_error(
                "payload_too_large", f"snapshot dropped: {exc}; lower camera.burst.jpeg_quality", self.topic
            )
            self._drop(key, item.id)
            return True
        if ok:
            self.published += 1
            if self._was_failing:
                log.info("broker reachable again: publishing snapshots")
        elif not self._was_failing:
            log.warning("broker unreachable: keeping snapshots in %s", self.spool.directory)
        self._was_failing = not ok
        return ok

    def _drop(self, key: Key, item_id: str) -> None:
        with self._lock:
            self._keys.pop(key, None)
            self._sent_at.pop(item_id, None)
            self._misses.pop(item_id, None)
        self.spool.remove(item_id)
