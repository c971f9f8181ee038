"""Bounds on what clients may ask: requests per token (a token bucket), bytes per upload, and
recognitions at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from fastapi import HTTPException, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the other form fields, beside the file itself


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

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.allowed = limit + MULTIPART_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.allowed:
            await _refuse(send, 413, str(too_large(int(length), self.limit).detail))
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.allowed:  # FastAPI answers an HTTPException raised while it reads the form
                raise too_large(f"more than {received}", self.limit)
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The file's bytes (from a sync route: the form is already spooled); 413 over `limit`."""
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise too_large(f"more than {limit}", limit)
    return data
