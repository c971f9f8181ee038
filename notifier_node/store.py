"""What the notifier keeps in its data directory (all writes atomic):

<data_dir>/outbox/<ts>_<camera>_<event>.jpg|.json   alerts when no token is configured
<data_dir>/notifier/parked/...                       alerts Telegram refused for good (400/401/403)
<data_dir>/notifier/armed.json                       armed state, survives restarts
<data_dir>/notifier/alerts/<key>.jpg + index.json    recent alert photos, for "Enroll" and replies
<data_dir>/notifier/updates.json                     getUpdates offset, so a restart skips handled commands
<data_dir>/notifier/handled.jsonl                    alerts already taken care of (notifier_node/handled.py)
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from homesec.contract import ArmedState, ContractError, new_id, parse
from homesec.files import write_atomic

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
