"""A durable, bounded FIFO on disk, for messages whose downstream is away.

Each record is two files: `<seq>.bin` (payload) and `<seq>.json` (metadata). The JSON is written last
and marks the record complete, so a crash mid-write leaves an orphan `.bin` that is ignored and cleaned
up. Writes are atomic (`homesec.files.write_atomic`). Names are zero-padded sequence numbers, so
directory order is arrival order and survives restarts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homesec.files import write_atomic

log = logging.getLogger(__name__)

_WIDTH = 12


@dataclass(frozen=True)
class SpoolItem:
    id: str
    payload: bytes
    meta: dict[str, Any]


class DiskSpool:
    def __init__(self, directory: Path, max_items: int = 1000, max_bytes: int = 200 * 1024 * 1024) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("spool bounds must be positive")
        self.directory = directory
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._ids = self._scan()
        self._next = int(self._ids[-1]) + 1 if self._ids else 0
        self._bytes = sum(self._record_size(i) for i in self._ids)
        self.dropped = 0  # records removed to keep within the bounds, since this spool was opened

    def _scan(self) -> list[str]:
        complete = sorted(p.stem for p in self.directory.glob("*.json") if p.stem.isdigit())
        done = set(complete)
        for orphan in self.directory.glob("*.bin"):
            if orphan.stem not in done:  # payload whose metadata never landed: a crash mid-put
                orphan.unlink(missing_ok=True)
        for tmp in self.directory.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        return complete

    def _record_size(self, item_id: str) -> int:
        return sum(
            p.stat().st_size
            for p in (self.directory / f"{item_id}.bin", self.directory / f"{item_id}.json")
            if p.exists()
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def put(self, payload: bytes, meta: dict[str, Any] | None = None) -> str:
        meta_bytes = json.dumps(meta or {}).encode()
        with self._lock:
            item_id = f"{self._next:0{_WIDTH}d}"
            self._next += 1
            write_atomic(self.directory / f"{item_id}.bin", payload)
            write_atomic(self.directory / f"{item_id}.json", meta_bytes)
            self._ids.append(item_id)
            self._bytes += len(payload) + len(meta_bytes)
            self._enforce_bounds()
        return item_id

    def _enforce_bounds(self) -> None:
        while len(self._ids) > 1 and (len(self._ids) > self.max_items or self._bytes > self.max_bytes):
            oldest = self._ids[0]
            log.warning(
                "spool %s full (%d items, %d bytes): dropping oldest item %s",
                self.directory,
                len(self._ids),
                self._bytes,
                oldest,
            )
            self._remove_locked(oldest)
            self.dropped += 1

    def ids(self) -> list[str]:
        """The records' ids, oldest first."""
        with self._lock:
            return list(self._ids)

    def peek(self) -> SpoolItem | None:
        """The oldest record. An unreadable one is moved to `corrupt/` (with an ERROR log), never
        returned again: retrying it forever would block everything queued behind it."""
        with self._lock:
            while self._ids:
                item = self._read(self._ids[0], payload=True)
                if item is not None:
                    return item
            return None

    def get(self, item_id: str, *, payload: bool = True) -> SpoolItem | None:
        """One record (with an empty payload when `payload` is False: reading only its metadata), or
        None when it is gone or unreadable (then quarantined like in `peek`)."""
        with self._lock:
            return self._read(item_id, payload=payload) if item_id in self._ids else None

    def _read(self, item_id: str, *, payload: bool) -> SpoolItem | None:
        try:
            data = (self.directory / f"{item_id}.bin").read_bytes() if payload else b""
            meta = json.loads((self.directory / f"{item_id}.json").read_bytes())
            if not isinstance(meta, dict):
                raise ValueError("metadata is not a JSON object")
            return SpoolItem(item_id, data, meta)
        except (OSError, ValueError) as exc:
            self._quarantine(item_id, exc)
            return None

    def _quarantine(self, item_id: str, exc: Exception) -> None:
        log.error("spool %s: record %s is unreadable (%s); moved to corrupt/", self.directory, item_id, exc)
        self._bytes -= self._record_size(item_id)
        corrupt = self.directory / "corrupt"
        corrupt.mkdir(exist_ok=True)
        for suffix in (".json", ".bin"):
            src = self.directory / f"{item_id}{suffix}"
            if src.exists():
                os.replace(src, corrupt / src.name)
        self._ids.remove(item_id)

    def remove(self, item_id: str) -> None:
        with self._lock:
            if item_id in self._ids:
                self._remove_locked(item_id)

    def _remove_locked(self, item_id: str) -> None:
        self._bytes -= self._record_size(item_id)
        # JSON first: without it the record no longer counts, even if we crash before the .bin goes.
        (self.directory / f"{item_id}.json").unlink(missing_ok=True)
        (self.directory / f"{item_id}.bin").unlink(missing_ok=True)
        self._ids.remove(item_id)
