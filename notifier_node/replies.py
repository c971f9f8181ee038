"""What the bot says goes through sender threads, so neither the command loop, nor the bus handlers, nor
the Requester's answer callbacks ever wait on Telegram. The bot keeps two: one for the chats it obeys
and a bounded one for refusals to everyone else, so that strangers never delay the household."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .policy import RateLimiter
from .telegram import BotApi, PermanentError, RateLimited, RetryableError

log = logging.getLogger(__name__)

OnSent = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class _Job:
    chat: int | None  # for the per-chat rate limit
    run: Callable[[BotApi], Any]
    what: str
    on_sent: OnSent | None = None


class Replier:
    ATTEMPTS = 3

    def __init__(
        self,
        api_factory: Callable[[], BotApi],
        limiter: RateLimiter,
        retry_s: float = 1.0,
        *,
        name: str = "notifier-replies",
        max_waiting: int = 0,
    ) -> None:
        """`max_waiting`: more replies waiting than this are dropped (0: no bound)."""
        self._api_factory = api_factory
        self._limiter = limiter
        self._retry_s = retry_s
        self._name = name
        self._queue: queue.Queue[_Job | None] = queue.Queue(max_waiting)
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def say(
        self,
        chat: int,
        text: str,
        *,
        reply_to: int | None = None,
        markup: dict[str, Any] | None = None,
        on_sent: OnSent | None = None,
    ) -> None:
        def run(api: BotApi) -> dict[str, Any]:
            return api.send_message(chat, text, reply_to=reply_to, reply_markup=markup)

        self._put(_Job(chat, run, f"message to {chat}", on_sent))

    def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        self._put(_Job(None, lambda api: api.answer_callback(callback_id, text), "callback answer"))

    def _put(self, job: _Job) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            log.info("%s: %d replies waiting already, %s dropped", self._name, self._queue.qsize(), job.what)

    def _run(self) -> None:
        api = self._api_factory()
        while not self._stop.is_set():
            job = self._queue.get()
            if job is None:
                break
            try:
                self._do(api, job)
            except Exception:  # e.g. a failing on_sent callback: one bad job must not silence the bot
                log.exception("%s failed", job.what)
        api.close()

    def _do(self, api: BotApi, job: _Job) -> None:
        for attempt in range(1, self.ATTEMPTS + 1):
            if job.chat is not None:
                self._limiter.wait_turn(job.chat, self._stop)
            try:
                result = job.run(api)
            except RateLimited as exc:
                if job.chat is not None:
                    self._limiter.push_back(job.chat, exc.retry_after)
                else:
                    self._stop.wait(exc.retry_after)
            except RetryableError as exc:
                log.info("%s failed (%s), attempt %d", job.what, exc, attempt)
                self._stop.wait(self._retry_s * attempt)
            except PermanentError as exc:
                log.warning("%s refused: %s", job.what, exc)
                return
            else:
                if job.on_sent is not None and isinstance(result, dict):
                    job.on_sent(result)
                return
            if self._stop.is_set():
                return
        log.warning("%s dropped after %d attempts", job.what, self.ATTEMPTS)
