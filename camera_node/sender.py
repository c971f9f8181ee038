"""Snapshot delivery that loses nothing: publish with a broker ack, else spool to disk, drain in order.

One thread does it all, so ordering is simple: while the spool holds anything, new snapshots join
its tail rather than overtaking it, and the thread publishes from the head whenever the broker is
reachable. JPEG encoding happens here too, off the frame loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from camera_node.sources import to_jpeg
from homesec.bus import Bus, PayloadTooLarge
from homesec.contract import JPEG_CONTENT_TYPE, META_PROPERTY, SnapshotMeta, meta_property
from homesec.spool import DiskSpool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    image: NDArray[np.uint8] | bytes  # RGB array or JPEG bytes
    meta: SnapshotMeta


class SnapshotSender:
    def __init__(
        self,
        bus: Bus,
        topic: str,
        spool: DiskSpool,
        *,
        jpeg_quality: int = 85,
        timeout_s: float = 10.0,
        retry_s: float = 1.0,
    ) -> None:
        self.bus, self.topic, self.spool = bus, topic, spool
        self.jpeg_quality, self.timeout_s, self.retry_s = jpeg_quality, timeout_s, retry_s
        self.published = 0  # counters, for logs and tests
        self.spooled = 0
        self._queue: queue.Queue[Snapshot | None] = queue.Queue()  # None: wake up, we are stopping
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_failing = False

    def submit(self, snapshot: Snapshot) -> None:
        self._queue.put(snapshot)

    def start(self) -> None:
        if len(self.spool):
            log.info("%d spooled snapshot(s) from an earlier run will be sent first", len(self.spool))
        self._thread = threading.Thread(target=self._run, name="camera-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)

    @property
    def idle(self) -> bool:
        """Nothing queued in memory nor spooled on disk."""
        return self._queue.unfinished_tasks == 0 and len(self.spool) == 0

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
            snap = self._queue.get(timeout=self.retry_s)
        except queue.Empty:
            pass
        else:
            if snap is None:
                self._queue.task_done()
                return
            self._send_new(snap)
        self._drain()

    def _encode(self, snap: Snapshot) -> tuple[bytes, dict[str, str]]:
        return to_jpeg(snap.image, self.jpeg_quality), meta_property(snap.meta)

    def _publish(self, payload: bytes, props: dict[str, str]) -> bool:
        """True when the snapshot is done with: published, or too large ever to be."""
        try:
            ok = self.bus.publish_confirmed(
                self.topic,
                payload,
                timeout=self.timeout_s,
                user_properties=props,
                content_type=JPEG_CONTENT_TYPE,
            )
        except PayloadTooLarge as exc:  # retrying cannot help; spooling it would block the queue forever
            self.bus.report_error(
                "payload_too_large", f"snapshot dropped: {exc}; lower camera.burst.jpeg_quality", self.topic
            )
            return True
        if ok:
            self.published += 1
            if self._was_failing:
                log.info("broker reachable again: publishing snapshots")
        elif not self._was_failing:
            log.warning("broker unreachable: spooling snapshots to %s", self.spool.directory)
        self._was_failing = not ok
        return ok

    def _send_new(self, snap: Snapshot) -> None:
        try:
            payload, props = self._encode(snap)
            if len(self.spool) == 0 and self._publish(payload, props):
                return
            self._spool(payload, props)
        finally:
            self._queue.task_done()

    def _spool(self, payload: bytes, props: dict[str, str]) -> None:
        self.spool.put(payload, {META_PROPERTY: props[META_PROPERTY]})
        self.spooled += 1

    def _absorb(self) -> None:
        """Move snapshots waiting in memory to the spool's tail (keeps order, survives a crash)."""
        while True:
            try:
                snap = self._queue.get_nowait()
            except queue.Empty:
                return
            if snap is None:
                self._queue.task_done()
                continue
            try:
                self._spool(*self._encode(snap))
            finally:
                self._queue.task_done()

    def _drain(self) -> None:
        while len(self.spool) and self.bus.connected and not self._stopping.is_set():
            self._absorb()
            item = self.spool.peek()
            if item is None:
                return
            meta = item.meta.get(META_PROPERTY)
            if not isinstance(meta, str):
                log.error("spooled snapshot %s has no metadata; dropping it", item.id)
                self.spool.remove(item.id)
                continue
            if not self._publish(item.payload, {META_PROPERTY: meta}):
                return  # try again after retry_s
            self.spool.remove(item.id)
            if not len(self.spool):
                log.info("spool drained")
