"""RTSP cameras against a real RTSP server (GStreamer's gst-rtsp-server, tests/rtsp_server.py) serving
H.264 encoded from the walk-in frames: the camera sees the walk-in on the substream and sends
full-resolution snapshots of the main stream to the real recognizer through a real mosquitto; the server
stops and comes back (offline, then online again); wrong credentials are an `error` with its reason,
and the password is never logged or published."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from camera_node.streams import make_live_source
from homesec.broker import free_port
from homesec.bus import Message
from homesec.contract import CameraState, RecognitionResult, Role, SnapshotMeta, Topics, parse, parse_meta
from tests.helpers import wait_until
from tests.mqtt_helpers import Broker, Collector
from tests.rtsp_server import RtspServer

if TYPE_CHECKING:
    from recognizer_node.pipeline import Recognizer

pytestmark = pytest.mark.integration

WALK_IN = sorted((Path(__file__).parent / "data" / "replay" / "walk_in").glob("*.jpg"))
T = Topics()
PASSWORD = "pa55-w0rd-xyz"


@pytest.fixture
def rtsp(tmp_path: Path) -> Iterator[RtspServer]:
    server = RtspServer(WALK_IN, tmp_path / "rtsp", free_port(), fps=10, size="640x480")
    server.start()
    yield server
    server.stop()


def rtsp_settings(camera: str, url: str, **extra: Any) -> CameraSettings:
    fields: dict[str, Any] = {
        "id": camera,
        "source": "rtsp",
        "url": url,
        "fps": 5,
        "lores": (320, 240),
        "motion": {"event_gap_s": 0.5, "min_frames": 1},
        "burst": {"count": 2, "interval_s": 0.2},
        "cooldown_s": 0,
        "reopen_max_s": 1,
        "timeout_s": 3,
        "publish_timeout_s": 2,
    }
    return CameraSettings.model_validate(fields | extra)


def start_camera(broker: Broker, settings: CameraSettings, data_dir: Path) -> tuple[CameraService, Any]:
    bus = broker.bus(Role.CAMERA, f"camera/{settings.id}")
    service = CameraService(settings, data_dir, bus)
    service.start()
    bus.start()
    return service, bus


def states(collector: Collector, camera: str) -> list[CameraState]:
    return [parse(CameraState, m.payload) for m in list(collector.seen) if m.topic == T.camera_state(camera)]


def test_the_walk_in_over_rtsp_reaches_the_recognizer(
    broker: Broker, rtsp: RtspServer, rec: Recognizer, tmp_path: Path
) -> None:
    from recognizer_node.service import RecognizerService
    from recognizer_node.settings import RecognizerSettings

    camera = "rtspdoor"
    collector = Collector(broker, T.snapshot(camera), T.result(camera), T.camera_state(camera))
    rec_bus = broker.bus("recognizer", "recognizer/main")
    recognizer = RecognizerService(
        RecognizerSettings(models_dir=rec.models_dir), tmp_path / "r", rec_bus, recognizer=rec
    )
    recognizer.start()
    rec_bus.start()
    settings = rtsp_settings(camera, rtsp.url("/main"), substream_url=rtsp.url("/sub"))
    service, bus = start_camera(broker, settings, tmp_path / "cam")
    try:
        snap = collector.wait_for(lambda m: m.topic == T.snapshot(camera), timeout=20)
        meta = parse_meta(SnapshotMeta, snap.user_properties)
        # motion on the 320x240 substream, the snapshot from the 640x480 main stream
        assert (meta.trigger, meta.width, meta.height) == ("motion", 640, 480)
        assert snap.payload[:2] == b"\xff\xd8"

        def answered(m: Message) -> bool:
            return (
                m.topic == T.result(camera) and parse(RecognitionResult, m.payload).event_id == meta.event_id
            )

        collector.wait_for(answered, timeout=20)
        # confirmed end to end (not `in_flight == 0`: the looping stream keeps starting new events)
        wait_until(lambda: service.sender.confirmed >= 1, timeout=10)
        assert ("online", None) in [(s.state, s.reason) for s in states(collector, camera)]
    finally:
        service.stop()
        bus.stop()
        recognizer.stop()
        rec_bus.stop()
        collector.close()


def test_a_server_that_stops_and_returns_is_reopened(
    broker: Broker, rtsp: RtspServer, tmp_path: Path
) -> None:
    camera = "rtspgate"
    collector = Collector(broker, T.camera_state(camera))
    service, bus = start_camera(broker, rtsp_settings(camera, rtsp.url("/main"), trigger="manual"), tmp_path)
    try:
        wait_until(lambda: service.state.state == "online", timeout=15)
        rtsp.stop()
        wait_until(lambda: service.state.state == "offline", timeout=15)
        offline = service.state.reason
        assert offline in ("stream ended", "timed out", "connection refused"), offline
        rtsp.start()
        wait_until(lambda: [s.state for s in states(collector, camera)][-1:] == ["online"], timeout=15)
        seen = [(s.state, s.reason) for s in states(collector, camera)]
        assert seen[seen.index(("online", None)) :] == [
            ("online", None),
            ("offline", offline),
            ("online", None),
        ]
    finally:
        service.stop()
        bus.stop()
        collector.close()


def test_wrong_credentials_are_an_error_and_no_password_is_logged(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RtspServer(WALK_IN[:4], tmp_path / "rtsp", free_port(), user="admin", password=PASSWORD)
    server.start()
    secrets = tmp_path / "data" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "camera-rtspgood.password").write_text(PASSWORD + "\n")
    wrong = "not-" + PASSWORD
    (secrets / "camera-rtspbad.password").write_text(wrong + "\n")
    collector = Collector(broker, T.camera_state("+"), T.error("camera/+"))
    caplog.set_level(logging.DEBUG)
    cameras = [
        start_camera(
            broker, rtsp_settings(c, server.url(), username="admin", trigger="manual"), tmp_path / "data"
        )
        for c in ("rtspgood", "rtspbad")
    ]
    try:
        good, bad = (service for service, _bus in cameras)
        wait_until(lambda: good.state.state == "online" and bad.state.state == "error", timeout=15)
        assert bad.state.reason == "401 Unauthorized"
        retained = collector.wait_for(
            lambda m: m.topic == T.camera_state("rtspbad") and b"401" in m.payload, timeout=10
        )
        assert parse(CameraState, retained.payload).state == "error"
        logged = caplog.text + "".join(m.payload.decode(errors="replace") for m in list(collector.seen))
        assert "admin:***@127.0.0.1" in caplog.text  # the URL is shown, masked
        assert PASSWORD not in logged and wrong not in logged
    finally:
        for service, bus in cameras:
            service.stop()
            bus.stop()
        collector.close()
        server.stop()


def test_h265_over_udp(tmp_path: Path) -> None:
    """The other codec and the other transport: an H.265 stream with RTP over UDP."""
    server = RtspServer(WALK_IN[:6], tmp_path / "rtsp", free_port(), codec="h265", size="480x360")
    server.start()
    settings = rtsp_settings("hevc", server.url(), rtsp_transport="udp", fps=10)
    source = make_live_source(settings, tmp_path)
    source.start()
    try:
        frame = None
        deadline = time.monotonic() + 15
        while frame is None and time.monotonic() < deadline:
            frame = source.read(want_main=True)
        assert frame is not None, source.state
        assert frame.size == (480, 360) and frame.lores_y.shape == (240, 320)
        assert isinstance(frame.main, np.ndarray) and frame.main.shape == (360, 480, 3)
    finally:
        source.stop()
        server.stop()
