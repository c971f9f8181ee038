"""Bounds on what clients may ask: requests per token (a token bucket), bytes per upload, and
recognitions at once."""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable

from fastapi import HTTPException, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the other form fields, beside the file itself
Allowance = Callable[[Scope], int | None]
"""A larger body limit for some requests (the web page's several photos at once), or None."""


class RateLimiter:
    """`per_minute` requests per key on average, up to `burst` at once. Thread-safe."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class RecognitionSlots:
    """At most `slots` API recognitions at once: the cores they would take are the alerts' (the MQTT
    path recognizes on its own thread, beside the API's). A request waits up to `wait_s` for a slot."""

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots, self.wait_s = slots, wait_s
        self._free = threading.BoundedSemaphore(slots)

    def take(self) -> bool:
        return self._free.acquire(timeout=self.wait_s)

    def give_back(self) -> None:
        self._free.release()

    def busy(self) -> HTTPException:
        return HTTPException(
            503,
            f"{self.slots} recognitions already running (recognizer.http.max_recognitions); retry shortly",
            {"Retry-After": "1"},
        )


def too_large(size: int | str, limit: int) -> HTTPException:
    return HTTPException(
        413, f"upload of {size} bytes is over the {limit} byte limit (recognizer.http.max_upload_mb)"
    )


class BodyLimit:
    """Refuse a request body over `limit` bytes (plus the multipart overhead) before it is read: by its
    Content-Length, or once a chunked body grows past it."""

    def __init__(self, app: ASGIApp, limit: int, allowance: Allowance | None = None) -> None:
        self.app = app
        self.limit = limit
        self.allowance = allowance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wider = self.allowance(scope) if self.allowance is not None else None
        limit = max(self.limit, wider or 0)
        allowed = limit + MULTIPART_OVERHEAD
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > allowed:
            page = not scope["path"].startswith("/api")  # a browser's form: a page, not JSON
            await _refuse(send, 413, str(too_large(int(length), limit).detail), page)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > allowed:  # FastAPI answers an HTTPException raised while it reads the form
                raise too_large(f"more than {received}", limit)
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, status: int, detail: str, page: bool = False) -> None:
    if page:
        body = PAGE_TOO_LARGE.format(detail=html.escape(detail)).encode()
        kind = b"text/html; charset=utf-8"
    else:
        body, kind = json.dumps({"detail": detail}).encode(), b"application/json"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


PAGE_TOO_LARGE = (
    "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
    "<title>Too large</title><h1>Too large</h1><p>{detail}.</p>"
    "<p>Go back and send fewer or smaller photos at a time.</p>\n"
)


def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The file's bytes (from a sync route: the form is already spooled); 413 over `limit`."""
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise too_large(f"more than {limit}", limit)
    return data
