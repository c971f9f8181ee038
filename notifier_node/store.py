"""What the notifier keeps in its data directory (all writes atomic):

<data_dir>/outbox/<ts>_<camera>_<event>.jpg|.json   alerts when no token is configured (and .r<N>.json,
                                                     a visit's later verdict); pruned: `prune_outbox`
<data_dir>/notifier/parked/...                       alerts Telegram refused for good (400/401/403)
<data_dir>/notifier/armed.json                       armed state, survives restarts
<data_dir>/notifier/alerts/<key>.jpg + index.json    recent alert photos, for "Enroll" and replies
<data_dir>/notifier/updates.json                     getUpdates offset, so a restart skips handled commands
<data_dir>/notifier/handled.jsonl                    alerts already taken care of (notifier_node/handled.py)
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from homesec.contract import ArmedState, ContractError, new_id, parse
from homesec.files import write_atomic

from .settings import OutboxSettings

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_name(text: str, limit: int = 40) -> str:
    return _UNSAFE.sub("-", text)[:limit].strip("-") or "x"


def write_pair(directory: Path, stem: str, jpeg: bytes, meta: dict[str, Any]) -> Path:
    """`<stem>.jpg` then `<stem>.json` (the JSON last: its presence marks a complete pair)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / f"{stem}.jpg", jpeg)
    write_atomic(directory / f"{stem}.json", json.dumps(meta, indent=2).encode())
    return directory / f"{stem}.jpg"


def alert_stem(camera: str, event_id: str, now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{moment}_{safe_name(camera)}_{safe_name(event_id)}"


# An outbox file: `<stem>.jpg`, `<stem>.json` or `<stem>.r<N>.json`, the stem as `alert_stem` writes it.
_OUTBOX_FILE = re.compile(r"^(?P<stem>(?P<ts>\d{8}T\d{6}\.\d{6}Z)_[A-Za-z0-9_-]+)\.(?:r\d+\.)?(?:jpg|json)$")
_STEM_TIME = "%Y%m%dT%H%M%S.%fZ"  # alert_stem's: as text, it sorts as the time it says
OUTBOX_SCAN_EVERY = 100  # alerts written between two scans of the outbox...
OUTBOX_SCAN_INTERVAL_S = 3600.0  # ...or this long, or as soon as the budget would be passed


@dataclass(frozen=True)
class Pruned:
    alerts: int  # deleted
    kept_bytes: int  # what the outbox's alerts hold after


@dataclass
class _OutboxAlert:
    written: str  # its stem's time, as text
    files: list[Path] = field(default_factory=list)
    size: int = 0


def prune_outbox(
    directory: Path, max_bytes: int, max_age_s: float, keep: str | None = None, now: datetime | None = None
) -> Pruned:
    """Delete the outbox's alerts (each with its photo, its JSON and its revisions) written more than
    `max_age_s` ago, then, over `max_bytes`, the oldest until the rest fits in 90% of it (so that a full
    outbox is not pruned again at the next alert); never the alert `keep` (the stem of the one just
    written), nor a file that is not an alert's."""
    alerts = sorted(_outbox_alerts(directory).items())  # stems begin with the time: oldest first
    total = sum(alert.size for _, alert in alerts)
    budget = int(0.9 * max_bytes) if total > max_bytes else max_bytes
    moment = (now or datetime.now(UTC)).timestamp() - max_age_s
    oldest_kept = datetime.fromtimestamp(max(moment, 0), UTC).strftime(_STEM_TIME)
    deleted = 0
    for stem, alert in alerts:
        if stem == keep or (alert.written >= oldest_kept and total <= budget):
            continue
        for path in alert.files:
            path.unlink(missing_ok=True)
        total -= alert.size
        deleted += 1
    return Pruned(deleted, total)


class OutboxRetention:
    """Keeps the outbox within `notifier.outbox`. Listing it costs a `stat` per file, too much to do at
    every alert once it holds tens of thousands, so it is pruned at start, then once OUTBOX_SCAN_EVERY alerts or an
    hour went by, or at once when the alerts written since would pass the budget (a running total is
    kept in between).
    A failure is logged, never raised: the alert it follows is written."""

    def __init__(
        self, directory: Path, settings: OutboxSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.directory, self.settings, self._clock = directory, settings, clock
        self._total: int | None = None  # bytes: at the last scan, plus the alerts written since
        self._since = 0
        self._scanned_at = 0.0

    def start(self) -> None:
        """What an earlier run left, pruned now."""
        self._scan(None)

    def written(self, photo: Path) -> None:
        """After an alert was written (`photo`, with its JSON beside it)."""
        try:
            size = sum(p.stat().st_size for p in (photo, photo.with_suffix(".json")))
        except OSError:
            size = 0
        due = (
            self._total is None
            or self._since + 1 >= OUTBOX_SCAN_EVERY
            or self._clock() - self._scanned_at >= OUTBOX_SCAN_INTERVAL_S
            or self._total + size > self.settings.max_bytes
        )
        if due:
            self._scan(photo.stem)
        else:
            self._total = (self._total or 0) + size
            self._since += 1

    def _scan(self, keep: str | None) -> None:
        s = self.settings
        try:
            pruned = prune_outbox(self.directory, s.max_bytes, s.max_age_s, keep)
        except OSError as exc:
            log.warning("outbox retention failed (the outbox grows until it works): %s", exc)
            self._total = None  # the next alert tries again
            return
        self._total, self._since, self._scanned_at = pruned.kept_bytes, 0, self._clock()
        if pruned.alerts:
            log.info(
                "outbox: %d old alert%s deleted (notifier.outbox: %g days, %g MB)",
                pruned.alerts, "s" if pruned.alerts != 1 else "", s.max_days, s.max_mb,
            )  # fmt: skip


def _outbox_alerts(directory: Path) -> dict[str, _OutboxAlert]:
    alerts: dict[str, _OutboxAlert] = {}
    for path, match in _outbox_files(directory):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        alert = alerts.setdefault(match["stem"], _OutboxAlert(match["ts"]))
        alert.files.append(path)
        alert.size += size
    return alerts


def _outbox_files(directory: Path) -> Iterator[tuple[Path, re.Match[str]]]:
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for name in names:
        if (match := _OUTBOX_FILE.match(name)) is not None:
            yield directory / name, match


class ArmedStore:
    def __init__(self, path: Path, default: bool) -> None:
        self.path = path
        self.default = default

    def load(self) -> ArmedState:
        try:
            return parse(ArmedState, self.path.read_bytes())
        except FileNotFoundError:
            return ArmedState(armed=self.default, by="default")
        except ContractError as exc:
            log.warning("ignoring unreadable %s (%s): using default armed=%s", self.path, exc, self.default)
            return ArmedState(armed=self.default, by="default")

    def save(self, state: ArmedState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, state.to_json())


class OffsetStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> int | None:
        try:
            value = json.loads(self.path.read_text()).get("offset")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, int) else None

    def save(self, offset: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"offset": offset}).encode())


class AlertStore:
    """The last `keep` alert photos, each under a short key that fits in callback_data, and which
    Telegram message showed which photo (so a reply to an alert can train from the original)."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = keep
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._index_path = directory / "index.json"
        self._order: list[str] = []
        self._messages: dict[str, str] = {}
        self._visitors: dict[str, str] = {}  # photo key -> the one unknown visitor it shows
        self._faces: dict[str, str] = {}  # photo key -> the archived face enrolling from it means
        self._named: dict[str, dict[str, str]] = {}  # photo key -> name given -> the archived face named so
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self._index_path.read_text())
            self._order = [k for k in data.get("order", []) if (self.directory / f"{k}.jpg").exists()]
            self._messages = {m: k for m, k in data.get("messages", {}).items() if k in self._order}
            self._visitors = {k: v for k, v in data.get("visitors", {}).items() if k in self._order}
            self._faces = {k: v for k, v in data.get("faces", {}).items() if k in self._order}
            self._named = {k: dict(v) for k, v in data.get("named", {}).items() if k in self._order}
        except (OSError, ValueError, AttributeError, TypeError):
            self._order, self._messages, self._visitors, self._faces, self._named = [], {}, {}, {}, {}

    def _save(self) -> None:
        index = {
            "order": self._order,
            "messages": self._messages,
            "visitors": self._visitors,
            "faces": self._faces,
            "named": self._named,
        }
        write_atomic(self._index_path, json.dumps(index).encode())

    def add(
        self,
        jpeg: bytes,
        visitor: str | None = None,
        face: str | None = None,
        named: dict[str, str] | None = None,
    ) -> str:
        """`face`: the archived face enrolling from this photo means; `named`: the archived face of each
        name the alert gave (as `alert_faces.FaceRef.encode` writes them)."""
        key = new_id()[:16]
        with self._lock:
            write_atomic(self.directory / f"{key}.jpg", jpeg)
            self._order.append(key)
            if visitor:
                self._visitors[key] = visitor
            if face:
                self._faces[key] = face
            if named:
                self._named[key] = {name.lower(): ref for name, ref in named.items()}
            while len(self._order) > self.keep:
                old = self._order.pop(0)
                (self.directory / f"{old}.jpg").unlink(missing_ok=True)
                self._messages = {m: k for m, k in self._messages.items() if k != old}
                self._visitors.pop(old, None)
                self._faces.pop(old, None)
                self._named.pop(old, None)
            self._save()
        return key

    def link(self, chat: int, message_id: int, key: str) -> None:
        with self._lock:
            if key in self._order:
                self._messages[f"{chat}:{message_id}"] = key
                self._save()

    def key_for(self, chat: int, message_id: int) -> str | None:
        with self._lock:
            return self._messages.get(f"{chat}:{message_id}")

    def visitor(self, key: str) -> str | None:
        with self._lock:
            return self._visitors.get(key)

    def face(self, key: str) -> str | None:
        """The archived face (as `alert_faces.FaceRef.encode` wrote it) enrolling from this photo means."""
        with self._lock:
            return self._faces.get(key)

    def named_face(self, key: str, name: str) -> str | None:
        """The archived face the alert shown by this photo named `name`, if it named one so."""
        with self._lock:
            return self._named.get(key, {}).get(name.lower())

    def jpeg(self, key: str) -> bytes | None:
        if not re.fullmatch(r"[0-9a-f]{1,32}", key):
            return None  # keys come back from Telegram callback data: never trust them as paths
        try:
            return (self.directory / f"{key}.jpg").read_bytes()
        except FileNotFoundError:
            return None
