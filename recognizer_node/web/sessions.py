"""Sign-in sessions of the web page: who is signed in (through which API token), and the CSRF token each
change must carry.

A session is opened by presenting an API token at `/login` and lives in memory only: the cookie holds
a random session id, never the token. A session follows its token: revoked, it ends at the next request;
a viewer token's session may look but not change. Sessions end after `IDLE_S` without a request, and a
restart of the recognizer signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from recognizer_node.http.tokens import Scope, TokenRecord

COOKIE = "homesec_session"
CSRF_FIELD = "csrf"  # the form field of every change (or the X-CSRF-Token header)
IDLE_S = 14 * 24 * 3600.0
MAX_SESSIONS = 1000  # the oldest go first: sign-ins cannot grow memory without bound


@dataclass(frozen=True)
class Flash:
    """A message shown once on the next page: what a change did, or why it was refused."""

    text: str
    ok: bool = True
    lines: tuple[str, ...] = ()  # details, e.g. one line per uploaded photo


@dataclass
class Session:
    id: str
    csrf: str
    token_sha256: str
    token_name: str
    scope: Scope
    seen: float
    flashes: list[Flash] = field(default_factory=list)

    @property
    def may_change(self) -> bool:
        return self.scope.grants(Scope.ADMIN)

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())

    def take_flashes(self) -> list[Flash]:
        out, self.flashes = self.flashes, []
        return out


class SessionStore:
    """The open sessions. Thread-safe (uvicorn serves the sync routes from a thread pool)."""

    def __init__(self, idle_s: float = IDLE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def open(self, token: TokenRecord) -> Session:
        now = self.clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            token_sha256=token.sha256,
            token_name=token.name,
            scope=token.scope,
            seen=now,
        )
        with self._lock:
            self._expire(now)
            while len(self._by_id) >= MAX_SESSIONS:
                del self._by_id[min(self._by_id.values(), key=lambda s: s.seen).id]
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The session of this cookie value, when it is open and not idle too long (it is now seen)."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if now - session.seen > self.idle_s:
                del self._by_id[session_id]
                return None
            session.seen = now
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)

    def _expire(self, now: float) -> None:
        for sid in [s.id for s in self._by_id.values() if now - s.seen > self.idle_s]:
            del self._by_id[sid]


def safe_next(target: str | None, default: str = "/") -> str:
    """Where to go after a sign-in or a change: a path of this site only (never `//host` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
