"""The snapshots this recognizer answered lately, so that a repeat gets the same result, and the same
alert when its first processing decided one.

A snapshot comes again when the camera saw no result in time (it lost it, or the recognizer was slow,
or died before publishing it), or when the broker redelivers one whose acknowledgement was lost. Its key
is `(camera, event_id, seq)`. The alert is sent again with its first key: a copy the notifier already
took care of is dropped there (notifier_node/handled.py), and one lost on the way is delivered. Only the
alert's metadata is kept here; its photo is drawn again from the frame. The memory is bounded (the
oldest are forgotten first); the event archive remembers results beyond it and across restarts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from homesec.contract import Alert, RecognitionResult, SnapshotMeta

SnapshotKey = tuple[str, str, int]
Answer = tuple[RecognitionResult, Alert | None]  # the result, and the alert it decided


def snapshot_key(meta: SnapshotMeta) -> SnapshotKey:
    return meta.camera, meta.event_id, meta.seq


class AnsweredSnapshots:
    """Least recently used first out; thread-safe (the bus worker and the HTTP API both recognize)."""

    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._results: OrderedDict[SnapshotKey, Answer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: SnapshotKey) -> Answer | None:
        with self._lock:
            result = self._results.get(key)
            if result is not None:
                self._results.move_to_end(key)
            return result

    def put(self, key: SnapshotKey, result: RecognitionResult, alert: Alert | None = None) -> None:
        with self._lock:
            self._results[key] = (result, alert)
            self._results.move_to_end(key)
            while len(self._results) > self.capacity:
                self._results.popitem(last=False)
