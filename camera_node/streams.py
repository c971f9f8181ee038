"""Live sources: the cameras people own. RTSP, MJPEG and USB streams are decoded with PyAV (FFmpeg's
libraries), HTTP snapshot URLs polled with httpx.

Each stream is read in a thread of its own that keeps only its newest picture: a live stream must be
drained as fast as it comes (or the camera's buffer fills and the picture lags), while motion detection
runs at `camera.fps`. Motion looks at the substream when there is one, else at the main stream scaled
down; a snapshot is the main stream's newest picture at full resolution (as Frigate splits its detect
and record roles). A stream that fails is reopened with a backoff (1, 2, 4... `camera.reopen_max_s`),
and the source reports its state (online, offline, error and why) through `on_state`.

Exceptions of PyAV quote the URL they opened, password included: their text is never logged or
published; the reason comes from the exception's kind (`reason_of`), and any text shown goes through
`credentials.mask`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from camera_node.credentials import Credentials, load_credentials, mask, with_credentials
from camera_node.settings import CameraSettings
from camera_node.sources import Frame, Size, WantMain, luma, wanted

log = logging.getLogger(__name__)

SourceStatus = Literal["online", "offline", "error"]
StateCallback = Callable[[SourceStatus, str | None], None]
IDLE_S = 1.0  # read() returns None after this long without a frame, so the frame loop runs its commands
FIRST_BACKOFF_S = 1.0


class StreamEnded(Exception):
    """The stream stopped sending (the camera closed it)."""


class NoVideo(Exception):
    """The address answers, but with no video stream in it."""


class HttpStatus(Exception):
    """An HTTP answer other than 200; the standard phrase (servers spell theirs as they like)."""

    def __init__(self, code: int, phrase: str) -> None:
        with contextlib.suppress(ValueError):  # a code HTTPStatus does not know keeps its phrase
            phrase = HTTPStatus(code).phrase
        super().__init__(f"{code} {phrase}")
        self.code, self.phrase = code, phrase


def reason_of(exc: BaseException) -> tuple[SourceStatus, str]:
    """(state, reason) for a failure to open or read a source. Never the exception's text: PyAV's
    quotes the URL with its password. `error` for what waiting will not mend, `offline` for the rest."""
    import av.error

    http = {
        av.error.HTTPUnauthorizedError: 401,
        av.error.HTTPForbiddenError: 403,
        av.error.HTTPNotFoundError: 404,
        av.error.HTTPBadRequestError: 400,
    }
    for kind, code in http.items():
        if isinstance(exc, kind):
            return "error", f"{code} {HTTPStatus(code).phrase}"
    if isinstance(exc, HttpStatus):
        return ("error" if 400 <= exc.code < 500 else "offline"), f"{exc.code} {exc.phrase}"
    if isinstance(exc, NoVideo):
        return "error", "no video"
    if isinstance(exc, StreamEnded | av.error.EOFError | EOFError):
        return "offline", "stream ended"
    if isinstance(exc, ConnectionRefusedError):
        return "offline", "connection refused"
    if isinstance(exc, TimeoutError | av.error.ExitError):
        return "offline", "timed out"
    if isinstance(exc, FileNotFoundError):
        return "error", "no such device"
    if isinstance(exc, PermissionError):
        return "error", "permission denied"
    if isinstance(exc, av.error.InvalidDataError | av.error.DecoderNotFoundError):
        return "error", "not a video stream it can decode"
    if isinstance(exc, av.error.HTTPError):
        return "error", "HTTP error"
    if isinstance(exc, OSError) and exc.strerror:
        return "offline", exc.strerror.lower()
    return "offline", type(exc).__name__


@dataclass
class Picture:
    """One decoded picture of a stream; converted only as far as the reader asks."""

    size: Size
    to_luma: Callable[[Size], NDArray[np.uint8]]
    to_main: Callable[[], NDArray[np.uint8] | bytes]
    ts: float = field(default_factory=time.monotonic)


class Feed(Protocol):
    """One stream: opened, read picture by picture until it fails (raises) or `stop` is set."""

    name: str
    shown: str  # its address with the password masked, for the logs

    def pictures(self, stop: threading.Event) -> Iterator[Picture]: ...


# ------------------------------------------------------------------------------------------ feeds


class AvFeed:
    """A stream FFmpeg opens: RTSP (H.264/H.265), MJPEG over HTTP, a V4L2 device."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        shown: str,
        fmt: str | None = None,
        options: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.name, self.shown = name, shown
        self._url, self._format, self._options, self._timeout_s = url, fmt, options or {}, timeout_s

    def pictures(self, stop: threading.Event) -> Iterator[Picture]:
        import av

        container: Any = av.open(
            self._url, format=self._format, options=self._options, timeout=(self._timeout_s, self._timeout_s)
        )
        try:
            if not container.streams.video:
                raise NoVideo
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: a 1080p stream decodes on every core
            for frame in container.decode(stream):
                yield _av_picture(frame)
                if stop.is_set():
                    return
            raise StreamEnded
        finally:
            container.close()


def _av_picture(frame: Any) -> Picture:
    def to_luma(size: Size) -> NDArray[np.uint8]:
        grey = frame.reformat(width=size[0], height=size[1], format="gray", interpolation="FAST_BILINEAR")
        plane: NDArray[np.uint8] = grey.to_ndarray()
        return np.ascontiguousarray(plane[: size[1], : size[0]])

    def to_main() -> NDArray[np.uint8]:
        rgb: NDArray[np.uint8] = frame.to_ndarray(format="rgb24")
        return rgb

    return Picture((frame.width, frame.height), to_luma, to_main)


class HttpSnapshotFeed:
    """A camera's snapshot URL (JPEG), fetched `fps` times a second with basic or digest auth."""

    name = "snapshot"

    def __init__(
        self,
        url: str,
        creds: Credentials,
        *,
        auth: Literal["basic", "digest"] = "digest",
        fps: float = 1.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.shown = mask(url)
        self._url, self._creds, self._auth, self._period = url, creds, auth, 1.0 / fps
        self._timeout_s = timeout_s

    def _client(self) -> Any:
        import httpx

        return httpx.Client(auth=http_auth(self._creds, self._auth), timeout=self._timeout_s)

    def pictures(self, stop: threading.Event) -> Iterator[Picture]:
        import httpx

        with self._client() as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(self._url)
                except httpx.TimeoutException:
                    raise TimeoutError from None
                except httpx.ConnectError as exc:
                    raise _connect_error(exc) from None
                if response.status_code != 200:
                    raise HttpStatus(response.status_code, response.reason_phrase)
                yield _jpeg_picture(response.content)
                stop.wait(max(0.0, self._period - (time.monotonic() - started)))


def http_auth(creds: Credentials, scheme: Literal["basic", "digest"]) -> Any:
    """httpx auth for `camera.auth` (None without credentials): `digest` answers whichever challenge
    the server makes, `basic` sends the password up front."""
    import httpx

    if not creds.given:
        return None
    user, password = creds.username or "", creds.password or ""
    return digest_or_basic(user, password) if scheme == "digest" else httpx.BasicAuth(user, password)


def digest_or_basic(user: str, password: str) -> Any:
    """httpx auth that answers the challenge the camera makes: digest (httpx's own), or basic for a
    camera that asks for it (httpx's DigestAuth gives up on a basic challenge). The password is sent
    only once the camera has asked, never up front."""
    import httpx

    class DigestOrBasic(httpx.Auth):
        def __init__(self) -> None:
            self._auths: dict[str, httpx.Auth] = {
                "digest": httpx.DigestAuth(user, password),
                "basic": httpx.BasicAuth(user, password),
            }
            self._scheme: str | None = None  # the camera's, once it has asked

        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            if self._scheme is not None:  # known: answer up front, as that scheme does
                yield from self._auths[self._scheme].sync_auth_flow(request)
                return
            response = yield request
            challenge = response.headers.get("www-authenticate", "").split(" ", 1)[0].lower()
            if response.status_code != 401 or challenge not in self._auths:
                return
            self._scheme = challenge
            flow = self._auths[challenge].sync_auth_flow(request)
            retried = next(flow)
            if challenge == "digest":  # digest first sends the request bare, then answers the challenge
                retried = flow.send(response)
            answer = yield retried
            with contextlib.suppress(StopIteration):
                flow.send(answer)

    return DigestOrBasic()


def _connect_error(exc: Exception) -> OSError:
    text = str(exc).lower()  # httpx wraps the socket error; its text holds no URL
    if "refused" in text:
        return ConnectionRefusedError()
    return OSError(0, "cannot connect")


def _jpeg_picture(jpeg: bytes) -> Picture:
    from PIL import Image, UnidentifiedImageError

    if jpeg[:2] != b"\xff\xd8":
        raise NoVideo
    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            size: Size = img.size
    except UnidentifiedImageError:
        raise NoVideo from None

    def to_luma(lores: Size) -> NDArray[np.uint8]:
        with Image.open(io.BytesIO(jpeg)) as img:
            img.draft("L", lores)  # the JPEG decoder scales by 1/2..1/8 for free
            return luma(img, lores)

    return Picture(size, to_luma, lambda: jpeg)


# ---------------------------------------------------------------------------------------- workers


class FeedWorker:
    """Reads one feed in its own thread, keeping its newest picture; reopens it with a backoff."""

    def __init__(self, feed: Feed, camera: str, on_change: Callable[[], None], reopen_max_s: float) -> None:
        self.feed, self.camera, self._on_change, self._max_s = feed, camera, on_change, reopen_max_s
        self.status: SourceStatus = "offline"
        self.reason: str | None = "starting"
        self.latest: Picture | None = None
        self.count = 0
        self.arrived = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        name = f"camera-{self.camera}-{self.feed.name}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.arrived:
            self.arrived.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=15)  # a blocked read ends within the source's timeout

    def _run(self) -> None:
        delay = FIRST_BACKOFF_S
        while not self._stop.is_set():
            try:
                for picture in self.feed.pictures(self._stop):
                    self._arrive(picture)
                    delay = FIRST_BACKOFF_S  # it worked: the next failure starts the backoff again
            except Exception as exc:
                if self._stop.is_set():
                    return
                status, reason = reason_of(exc)
                level = logging.DEBUG if reason == self.reason else logging.WARNING  # said once is enough
                log.log(
                    level,
                    "camera %s: %s %s: %s; reopening in %g s",
                    self.camera,
                    self.feed.name,
                    self.feed.shown,
                    reason,
                    delay,
                )
                log.debug("camera %s: %s", self.camera, mask(f"{type(exc).__name__}: {exc}"))
                self._set(status, reason)
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_s)

    def _arrive(self, picture: Picture) -> None:
        with self.arrived:
            self.latest = picture
            self.count += 1
            self.arrived.notify_all()
        if self.status != "online":
            log.info("camera %s: %s %s online", self.camera, self.feed.name, self.feed.shown)
            self._set("online", None)

    def _set(self, status: SourceStatus, reason: str | None) -> None:
        if (status, reason) != (self.status, self.reason):
            self.status, self.reason = status, reason
            self._on_change()


class LiveSource:
    """A FrameSource over a main feed and an optional low-resolution one, paced to `fps`."""

    live = True  # read() returning None means "no frame yet", not the end

    def __init__(
        self,
        camera: str,
        main: Feed,
        lores_size: Size,
        fps: float,
        *,
        substream: Feed | None = None,
        on_state: StateCallback | None = None,
        reopen_max_s: float = 60.0,
        idle_s: float = IDLE_S,
    ) -> None:
        self.camera, self.lores_size, self._period, self._idle_s = camera, lores_size, 1.0 / fps, idle_s
        self.on_state = on_state
        self._main = FeedWorker(main, camera, self._changed, reopen_max_s)
        self._sub = FeedWorker(substream, camera, self._changed, reopen_max_s) if substream else None
        self._seen = 0
        self._last_at = float("-inf")
        self._index = 0
        self._stopped = threading.Event()
        self._reported: tuple[SourceStatus, str | None] | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> tuple[SourceStatus, str | None]:
        """The camera's: online when every feed is, else the first failing feed's state and reason."""
        for worker in self._workers:
            if worker.status != "online":
                return worker.status, worker.reason
        return "online", None

    @property
    def decoded(self) -> dict[str, int]:
        """Pictures decoded so far, by feed (the main stream, the substream): for benchmarks."""
        return {worker.feed.name: worker.count for worker in self._workers}

    @property
    def _workers(self) -> list[FeedWorker]:
        return [self._main] + ([self._sub] if self._sub else [])

    def _changed(self) -> None:
        with self._lock:
            state = self.state
            if state == self._reported:
                return
            self._reported = state
        if self.on_state is not None:
            self.on_state(*state)

    def start(self) -> None:
        self._stopped.clear()
        self._changed()  # "starting", before a worker can report anything
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        self._stopped.set()
        for worker in self._workers:
            worker.stop()

    def read(self, want_main: WantMain = False) -> Frame | None:
        """The newest frame, at most `fps` a second; None after `idle_s` without one (or once stopped)."""
        detect = self._sub or self._main
        self._stopped.wait(max(0.0, self._last_at + self._period - time.monotonic()))
        deadline = time.monotonic() + self._idle_s
        with detect.arrived:
            while detect.count == self._seen and not self._stopped.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                detect.arrived.wait(left)
            if self._stopped.is_set():
                return None
            self._seen, lores_picture = detect.count, detect.latest
        assert lores_picture is not None
        self._last_at = time.monotonic()
        main_picture = self._main.latest
        main = main_picture.to_main() if main_picture is not None and wanted(want_main) else None
        size = main_picture.size if main_picture is not None else lores_picture.size
        self._index += 1
        return Frame(lores_picture.to_luma(self.lores_size), main, size, self._last_at, self._index - 1)


# ------------------------------------------------------------------------------------- from config


def make_live_source(
    settings: CameraSettings, data_dir: Path | None, on_state: StateCallback | None = None
) -> LiveSource:
    """The source for rtsp, mjpeg, usb and http cameras (ValueError: a readable reason)."""
    s = settings
    creds = load_credentials(s, data_dir)
    substream = None
    if s.source == "http":
        assert s.url is not None  # the settings refuse http without a url
        main: Feed = HttpSnapshotFeed(s.url, creds, auth=s.auth, fps=s.fps, timeout_s=s.timeout_s)
    elif s.source == "usb":
        w, h = s.resolution
        options = {"video_size": f"{w}x{h}", "framerate": f"{s.fps:g}"}
        main = AvFeed("device", s.device, shown=s.device, fmt="v4l2", options=options, timeout_s=s.timeout_s)
    elif s.source == "mjpeg":
        assert s.url is not None
        main = _url_feed("stream", s.url, creds, fmt="mpjpeg", options={}, timeout_s=s.timeout_s)
    elif s.source == "rtsp":
        assert s.url is not None
        # FFmpeg probes 5 s of a stream by default before the first frame; the SDP and the first
        # packets say enough (seen: 2.9 s to the first frame by default, 0.3 s with 0.1 s of probing).
        options = {"rtsp_transport": s.rtsp_transport, "analyzeduration": "200000"}
        main = _url_feed("main stream", s.url, creds, fmt=None, options=options, timeout_s=s.timeout_s)
        if s.substream_url:
            substream = _url_feed("substream", s.substream_url, creds, None, options, s.timeout_s)
    else:
        raise ValueError(f"camera.source = {s.source!r} is not a live stream")
    return LiveSource(
        s.id, main, s.lores, s.fps, substream=substream, on_state=on_state, reopen_max_s=s.reopen_max_s
    )


def _url_feed(
    name: str, url: str, creds: Credentials, fmt: str | None, options: dict[str, str], timeout_s: float
) -> AvFeed:
    full = with_credentials(url, creds)
    return AvFeed(name, full, shown=mask(full), fmt=fmt, options=options, timeout_s=timeout_s)
