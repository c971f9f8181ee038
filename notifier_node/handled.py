"""Which alerts the notifier has already taken care of, so each is handled at most once.

The broker redelivers an alert whose acknowledgement it never saw, and two recognizer replicas can both
answer one snapshot: both copies carry the same `(camera, event_id, seq)`. A key is recorded once its
alert is safe (spooled, written to the outbox, or deliberately not sent), before the bus acknowledges it,
and a copy whose key is recorded is dropped. A visit's later revision (a correction read from the
results, a new unknown face) has keys of its own, and so has each caption edit that shows it.

On disk: one JSON line `[epoch_seconds, key]` per key, appended and synced, so a crash loses nothing
that was acknowledged. The file is rewritten without the entries older than `max_age_s`, or beyond the
newest `max_keys`, when it has grown to twice what it keeps.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from homesec.contract import Alert
from homesec.files import write_atomic

log = logging.getLogger(__name__)

DAY = 24 * 3600.0


def alert_key(alert: Alert, chat: int | str | None = None) -> str:
    """The identity of an alert (and, with `chat`, of its delivery to one chat). A later revision of a
    visit's alert may show the same frame: it is another alert."""
    base = f"{alert.camera}/{alert.event_id}/{alert.seq}"
    base += f"#r{alert.revision}" if alert.revision else ""
    return base if chat is None else f"{base}@{chat}"


def revision_key(camera: str, event_id: str, revision: int, chat: int | str | None = None) -> str:
    """The identity of a visit's revision (and, with `chat`, of the caption edit that showed it there)."""
    base = f"visit:{camera}/{event_id}#r{revision}"
    return base if chat is None else f"{base}@{chat}"


def append_line(path: Path, line: bytes) -> None:
    """Append `line` and sync it: once this returns, the line survives a crash or a power cut."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


class HandledKeys:
    def __init__(
        self,
        path: Path,
        *,
        max_age_s: float = 7 * DAY,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_age_s = max_age_s
        self.max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._lines = 0  # lines in the file, kept or not
        self._unsaved = False  # a key the disk refused: the whole record is rewritten at the next add
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._load()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def add(self, key: str) -> None:
        """Record `key`: at once for this process, durably before returning. Raises OSError when the
        disk refuses (the key is then known to this process only; the next successful write saves it)."""
        now = self._clock()
        with self._lock:
            if key in self._keys:
                return
            self._keys[key] = now
            self._prune(now)
            if self._unsaved or (self._lines > 2 * len(self._keys) and self._lines > 64):
                self._unsaved = True
                self._compact()
            else:
                self._unsaved = True
                append_line(self.path, json.dumps([round(now, 3), key]).encode() + b"\n")
                self._lines += 1
            self._unsaved = False

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        for line in raw.splitlines():
            try:
                moment, key = json.loads(line)
                self._keys[str(key)] = float(moment)
            except (ValueError, TypeError):  # a line cut short by a crash mid-append
                continue
            self._lines += 1
        self._keys = OrderedDict(sorted(self._keys.items(), key=lambda kv: kv[1]))
        self._prune(self._clock())
        if self._lines > len(self._keys):
            try:
                self._compact()
            except OSError as exc:  # still correct, only larger than it needs to be
                log.warning("could not rewrite %s: %s", self.path, exc)

    def _prune(self, now: float) -> None:
        while self._keys:
            oldest, moment = next(iter(self._keys.items()))
            if len(self._keys) <= self.max_keys and now - moment <= self.max_age_s:
                return
            del self._keys[oldest]

    def _compact(self) -> None:
        data = b"".join(json.dumps([round(t, 3), k]).encode() + b"\n" for k, t in self._keys.items())
        write_atomic(self.path, data)
        self._lines = len(self._keys)
