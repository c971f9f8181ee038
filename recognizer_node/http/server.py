"""uvicorn in a thread of its own, started and stopped with the recognizer node."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from homesec.files import write_atomic
from homesec.runner import Service
from recognizer_node.captures import Captures
from recognizer_node.household import Household
from recognizer_node.household_mqtt import send_captures
from recognizer_node.http.app import create_app
from recognizer_node.http.context import ApiContext
from recognizer_node.http.limits import RateLimiter, RecognitionSlots
from recognizer_node.http.metrics import Metrics
from recognizer_node.http.settings import HttpSettings
from recognizer_node.http.tokens import TokenStore
from recognizer_node.http.up import local_url, url_file
from recognizer_node.operations import RecognizerOperations
from recognizer_node.service import RecognizerService

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class HttpServer:
    """Serves `app` on (host, port); port 0 takes a free one (see `port` once started)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Listen (OSError when the port is taken) and return once requests are answered."""
        sock = _listen(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        self._server = server = _Server(config)
        self._thread = thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="http-api", daemon=True
        )
        thread.start()
        if not server.ready.wait(START_TIMEOUT_S) or not thread.is_alive():
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the HTTP API did not start on {self.url}")

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("the HTTP API did not stop in %.0f s", STOP_TIMEOUT_S)
        self._server = self._thread = None


class _Server(uvicorn.Server):
    """Says when it listens. (Off the main thread, uvicorn leaves the signal handlers alone.)"""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP, and with it on,
    # every answer waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {host}:{port} (recognizer.http): {exc.strerror}"
        ) from None
    sock.listen(128)
    return sock


class HttpApi:
    """The HTTP API of one recognizer: the app over its operations, and the server that runs it."""

    def __init__(
        self,
        ops: RecognizerOperations,
        settings: HttpSettings,
        data_dir: Path,
        household: Household | None = None,
        captures: Captures | None = None,
    ) -> None:
        household = household or Household()  # without a bus: no state, and commands refused
        self.context = ApiContext(
            ops=ops,
            household=household,
            settings=settings,
            tokens=TokenStore.of(data_dir),
            limiter=RateLimiter(settings.rate_per_minute, settings.burst),
            metrics=Metrics(lambda: ops.summary.enrollments),
            recognitions=RecognitionSlots(settings.max_recognitions, settings.recognition_wait_s),
            captures=captures or Captures(household),
        )
        ops.on_recognized(self.context.metrics.recognized)
        self.server = HttpServer(create_app(self.context), settings.host, settings.port)
        self.url_file = url_file(data_dir)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()
        self.context.ready.set()
        reachable = local_url(self.context.settings.model_copy(update={"port": self.server.port}))
        write_atomic(self.url_file, f"{reachable}\n".encode())
        log.info("HTTP API on %s (docs: %s/api/docs)", self.url, self.url)

    def stop(self) -> None:
        self.context.ready.clear()  # health says so while the last requests finish
        self.url_file.unlink(missing_ok=True)
        self.server.stop()


class WithHttp:
    """A node's service and its HTTP API, started and stopped together (the API last up, first down).
    A port that cannot be had leaves the node running without its API."""

    def __init__(self, service: Service, api: HttpApi) -> None:
        self.service, self.api = service, api

    def start(self) -> None:
        self.service.start()
        try:
            self.api.start()
        except OSError as exc:  # alerts matter more than the API: run on without it, and say so
            log.error("HTTP API off: %s", exc)

    def stop(self) -> None:
        try:
            self.api.stop()
        finally:
            self.service.stop()


def with_http(service: RecognizerService, settings: HttpSettings, data_dir: Path) -> Service:
    """The recognizer service, with its HTTP API unless `recognizer.http.enabled` is false."""
    if not settings.enabled:
        return service
    captures = Captures(service.household)
    send_captures(service.bus, captures)
    api = HttpApi(service.ops, settings, data_dir, service.household, captures)
    service.bus.on_error(lambda report: api.context.metrics.error(report.error))  # bad_payload, ...
    return WithHttp(service, api)
