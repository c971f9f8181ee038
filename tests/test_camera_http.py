"""HTTP cameras against a real HTTP server (pytest-httpserver): a snapshot URL polled with basic and with
digest authentication, the `error` state and its reason for a wrong password, and an MJPEG stream
(multipart/x-mixed-replace) read by FFmpeg. The camera's frames go through the service's own loop."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from camera_node.streams import make_live_source
from homesec.contract import SnapshotMeta, parse_meta
from tests.helpers import LocalBus, wait_until

WALK_IN = sorted((Path(__file__).parent / "data" / "replay" / "walk_in").glob("*.jpg"))
USER, PASSWORD, REALM, NONCE = "viewer", "digest-pa55", "cam", "5f0c8e1a9b2d"


class Frames:
    """The walk-in, one frame per request (or per MJPEG part), looping."""

    def __init__(self) -> None:
        self.jpegs = [p.read_bytes() for p in WALK_IN]
        self.served = 0

    def next(self) -> bytes:
        jpeg = self.jpegs[self.served % len(self.jpegs)]
        self.served += 1
        return jpeg


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_ok(request: Request, password: str = PASSWORD) -> bool:
    """RFC 7616 (MD5, qop=auth), as a camera checks it."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Digest "):
        return False
    fields = dict(part.strip().split("=", 1) for part in header[len("Digest ") :].split(",") if "=" in part)
    f = {k: v.strip('"') for k, v in fields.items()}
    ha1 = _md5(f"{f['username']}:{REALM}:{password}")
    ha2 = _md5(f"{request.method}:{f['uri']}")
    want = _md5(f"{ha1}:{f['nonce']}:{f['nc']}:{f['cnonce']}:{f['qop']}:{ha2}")
    return f["username"] == USER and f["response"] == want


def basic_ok(request: Request) -> bool:
    auth = request.authorization
    return auth is not None and (auth.username, auth.password) == (USER, PASSWORD)


def snapshot_handler(frames: Frames, scheme: str) -> Any:
    def handle(request: Request) -> Response:
        ok = digest_ok(request) if scheme == "digest" else basic_ok(request)
        if not ok:
            challenge = (
                f'Digest realm="{REALM}", nonce="{NONCE}", qop="auth", algorithm=MD5'
                if scheme == "digest"
                else f'Basic realm="{REALM}"'
            )
            return Response("no", status=401, headers={"WWW-Authenticate": challenge})
        return Response(frames.next(), mimetype="image/jpeg")

    return handle


def http_settings(camera: str, url: str, **extra: Any) -> CameraSettings:
    fields: dict[str, Any] = {
        "id": camera,
        "url": url,
        "fps": 20,
        "username": USER,
        "motion": {"event_gap_s": 0.3, "min_frames": 1},
        "burst": {"count": 1},
        "cooldown_s": 0,
        "reopen_max_s": 1,
        "timeout_s": 3,
    }
    return CameraSettings.model_validate(fields | extra)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for camera in ("snap", "mjpeg"):
        (secrets / f"camera-{camera}.password").write_text(PASSWORD)
    (secrets / "camera-wrong.password").write_text("guess")
    return tmp_path


@pytest.mark.parametrize(
    ("scheme", "auth"),
    [("basic", "basic"), ("digest", "digest"), ("basic", "digest")],  # digest also answers basic
)
def test_a_snapshot_url_is_polled_and_the_walk_in_becomes_a_snapshot(
    httpserver: HTTPServer, data_dir: Path, scheme: str, auth: str
) -> None:
    frames = Frames()
    httpserver.expect_request("/snap.jpg").respond_with_handler(snapshot_handler(frames, scheme))
    settings = http_settings("snap", httpserver.url_for("/snap.jpg"), source="http", auth=auth)
    bus = LocalBus("camera/snap")
    service = CameraService(settings, data_dir, bus)
    service.start()
    bus.start()
    try:
        wait_until(lambda: any(m.topic == bus.topics.snapshot("snap") for m in bus.published), timeout=15)
        snap = next(m for m in bus.published if m.topic == bus.topics.snapshot("snap"))
        meta = parse_meta(SnapshotMeta, snap.user_properties)
        assert (meta.trigger, meta.width, meta.height) == ("motion", 480, 360)
        assert snap.payload in frames.jpegs  # the camera's own JPEG, passed through unchanged
        assert service.state.state == "online"
    finally:
        service.stop()
        bus.close()


def test_a_wrong_password_is_an_error_with_its_reason(httpserver: HTTPServer, data_dir: Path) -> None:
    httpserver.expect_request("/snap.jpg").respond_with_handler(snapshot_handler(Frames(), "digest"))
    changes: list[tuple[str, str | None]] = []
    source = make_live_source(
        http_settings("wrong", httpserver.url_for("/snap.jpg"), source="http"),
        data_dir,
        lambda state, reason: changes.append((state, reason)),
    )
    source.start()
    try:
        wait_until(lambda: ("error", "401 Unauthorized") in changes)
    finally:
        source.stop()


def mjpeg_handler(frames: Frames, stop: threading.Event) -> Any:
    def parts() -> Iterator[bytes]:
        for _ in range(200):  # 10 s at most: the server's thread must end
            if stop.is_set():
                return
            jpeg = frames.next()
            yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
            yield jpeg + b"\r\n"
            time.sleep(0.05)  # the camera's own pace: 20 frames a second

    def handle(request: Request) -> Response:
        if not basic_ok(request):
            return Response("no", status=401, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})
        return Response(parts(), mimetype="multipart/x-mixed-replace; boundary=frame")

    return handle


def test_an_mjpeg_stream_is_decoded_and_shows_the_walk_in(httpserver: HTTPServer, data_dir: Path) -> None:
    frames, stop = Frames(), threading.Event()
    httpserver.expect_request("/video.mjpg").respond_with_handler(mjpeg_handler(frames, stop))
    settings = http_settings("mjpeg", httpserver.url_for("/video.mjpg"), source="mjpeg", fps=10)
    bus = LocalBus("camera/mjpeg")
    service = CameraService(settings, data_dir, bus)
    service.start()
    bus.start()
    try:
        wait_until(lambda: any(m.topic == bus.topics.snapshot("mjpeg") for m in bus.published), timeout=15)
        snap = next(m for m in bus.published if m.topic == bus.topics.snapshot("mjpeg"))
        meta = parse_meta(SnapshotMeta, snap.user_properties)
        assert (meta.width, meta.height) == (480, 360)
        with Image.open(io.BytesIO(snap.payload)) as img:
            assert img.size == (480, 360)
    finally:
        stop.set()
        service.stop()
        bus.close()


def test_the_node_does_not_log_every_snapshot_request(
    httpserver: HTTPServer, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """httpx logs each request at INFO: a camera polled at `fps` would fill its log with a line per
    picture (two a second, forever). The node's logging keeps them for DEBUG."""
    import logging

    from camera_node.__main__ import setup_camera_logging

    httpserver.expect_request("/snap.jpg").respond_with_handler(snapshot_handler(Frames(), "basic"))
    settings = http_settings("snap", httpserver.url_for("/snap.jpg"), source="http", auth="basic")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_camera_logging("INFO", json_format=False, name="camera/snap")
        source = make_live_source(settings, data_dir)
        source.start()
        try:
            wait_until(lambda: source.decoded["snapshot"] >= 3)
        finally:
            source.stop()
        logged = capsys.readouterr().err
        assert "camera snap: snapshot" in logged and " online" in logged  # the node's own lines stay
        assert "HTTP Request" not in logged
        setup_camera_logging("DEBUG", json_format=False, name="camera/snap")
        assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    finally:
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
