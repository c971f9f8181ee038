"""API tokens: random bearer secrets with a scope, kept only as SHA-256 hashes.

The store is `<data_dir>/secrets/api-tokens.json`. The server re-reads it when the file changes, so a
token created or revoked with `homesec api token ...` counts at once. A token is 256 random bits, so a
plain SHA-256 is enough to keep it from being recovered (a slow hash guards guessable passwords). The
plain text is shown once when created; `homesec up` keeps its two in `api-admin.token` and
`api-viewer.token` beside the store (mode 600) for the user and the scripts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from homesec.contract import to_iso, utc_now
from homesec.files import write_atomic

log = logging.getLogger(__name__)

STORE_NAME = "api-tokens.json"
TOKEN_PREFIX = "hsk_"


class TokenStoreError(RuntimeError):
    """The store file cannot be read."""


class Scope(StrEnum):
    ADMIN = "admin"  # everything
    VIEWER = "viewer"  # reads only: changes nothing

    def grants(self, needed: Scope) -> bool:
        return self == Scope.ADMIN or needed == Scope.VIEWER


@dataclass(frozen=True)
class TokenRecord:
    id: str  # the first hex digits of the hash: names the token in lists, logs and rate limits
    scope: Scope
    sha256: str
    name: str
    created: str


def secrets_dir(data_dir: Path) -> Path:
    return data_dir / "secrets"


def token_file(data_dir: Path, scope: Scope) -> Path:
    """Where `homesec up` keeps its token of `scope`."""
    return secrets_dir(data_dir) / f"api-{scope}.token"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The token hashes of one data dir. Thread-safe; any number of processes may read it while one
    writes (two writing at once could lose one's change)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, TokenRecord] = {}

    @classmethod
    def of(cls, data_dir: Path) -> TokenStore:
        return cls(secrets_dir(data_dir) / STORE_NAME)

    def lookup(self, token: str) -> TokenRecord | None:
        """The record of a presented token, or None when it is unknown, revoked or the store unreadable."""
        with self._lock:
            try:
                self._refresh()
            except TokenStoreError as exc:  # refuse everyone rather than fail every request
                log.error("%s", exc)
                return None
            return self._by_hash.get(digest(token))

    def records(self) -> list[TokenRecord]:
        with self._lock:
            self._refresh()
            return sorted(self._by_hash.values(), key=lambda r: r.created)

    def create(self, scope: Scope, name: str) -> tuple[str, TokenRecord]:
        """A new token (its plain text, to show once) and its record, now in the store."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        hashed = digest(token)
        record = TokenRecord(hashed[:12], scope, hashed, name, to_iso(utc_now()))
        with self._lock:
            self._refresh()
            self._save({**self._by_hash, hashed: record})
        return token, record

    def revoke(self, token_id: str) -> int:
        """Forget the tokens whose id starts with `token_id`; how many were forgotten."""
        with self._lock:
            self._refresh()
            kept = {h: r for h, r in self._by_hash.items() if not r.id.startswith(token_id)}
            gone = len(self._by_hash) - len(kept)
            if gone:
                self._save(kept)
            return gone

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._by_hash = None, {}
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # every save replaces the file: a new inode
        if stamp != self._stamp:
            self._by_hash = _read(self.path)
            self._stamp = stamp

    def _save(self, by_hash: dict[str, TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        body = {"tokens": [asdict(r) for r in by_hash.values()]}
        write_atomic(self.path, json.dumps(body, indent=2).encode() + b"\n")
        os.chmod(self.path, 0o600)
        self._by_hash, self._stamp = by_hash, None  # the next read takes the new file's stamp


def _read(path: Path) -> dict[str, TokenRecord]:
    try:
        data = json.loads(path.read_text())
        records = [TokenRecord(**{**t, "scope": Scope(t["scope"])}) for t in data["tokens"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TokenStoreError(f"API token store {path} unreadable ({type(exc).__name__}: {exc})") from None
    return {r.sha256: r for r in records}


def ensure_up_tokens(data_dir: Path) -> dict[Scope, Path]:
    """One admin and one viewer token in their files, made when missing or no longer in the store
    (revoking one of them makes the next `homesec up` issue a new one)."""
    store = TokenStore.of(data_dir)
    files = {}
    for scope in Scope:
        path = token_file(data_dir, scope)
        if not (path.exists() and store.lookup(path.read_text().strip())):
            token, _ = store.create(scope, f"homesec up ({scope})")
            write_atomic(path, token.encode() + b"\n")
            os.chmod(path, 0o600)
        files[scope] = path
    return files
