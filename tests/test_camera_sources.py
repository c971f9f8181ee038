"""Unit tests of the live sources' parts: masking credentials, reasons of failures, the settings' refusals,
the USB (V4L2) open path with FFmpeg's `open` faked (no /dev/video here), a feed that fails and comes
back, and a photo shown to the camera (`cmd/show`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from pydantic import ValidationError

from camera_node.credentials import Credentials, load_credentials, mask, with_credentials
from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from camera_node.streams import LiveSource, Picture, make_live_source, reason_of
from homesec.contract import ErrorReport, ShowCommand, SnapshotMeta, meta_property, parse, parse_meta
from tests.helpers import LocalBus, wait_until

PHOTO = Path(__file__).parent / "data" / "faces" / "biden_train.jpg"


def test_urls_are_shown_without_their_password() -> None:
    url = with_credentials("rtsp://cam.lan:554/Streaming/Channels/101", Credentials("admin", "p@ss:w/rd"))
    assert url == "rtsp://admin:p%40ss%3Aw%2Frd@cam.lan:554/Streaming/Channels/101"
    assert (
        mask(f"Server returned 401 for '{url}'")
        == "Server returned 401 for 'rtsp://admin:***@cam.lan:554/Streaming/Channels/101'"
    )
    assert mask("http://u@h/x and rtsp://h/y") == "http://u:***@h/x and rtsp://h/y"
    assert with_credentials("rtsp://h/x", Credentials()) == "rtsp://h/x"


def test_the_password_comes_from_its_file(tmp_path: Path) -> None:
    settings = CameraSettings(id="gate", source="rtsp", url="rtsp://h/x", username="admin")
    assert load_credentials(settings, tmp_path) == Credentials("admin", None)  # an open camera
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "camera-gate.password").write_text("hunter2\n")
    assert load_credentials(settings, tmp_path).password == "hunter2"
    assert "hunter2" not in repr(load_credentials(settings, tmp_path))
    missing = settings.model_copy(update={"password_file": tmp_path / "nope"})
    with pytest.raises(ValueError, match=r"camera\.password_file: .*nope does not exist"):
        load_credentials(missing, tmp_path)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": "rtsp"}, "needs camera.url"),
        ({"source": "rtsp", "url": "rtsp://admin:secret@cam/x"}, "holds a password"),
        ({"source": "http", "url": "rtsp://cam/x"}, "must look like http://host/"),
        ({"source": "mjpeg", "url": "http://cam/x", "substream_url": "http://cam/y"}, "substream_url is for"),
        ({"source": "frigate"}, "needs camera.url"),
    ],
)
def test_the_settings_refuse_what_cannot_work(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CameraSettings.model_validate(fields)


def test_failures_have_readable_reasons() -> None:
    unauthorized = av.error.HTTPUnauthorizedError(-825242872, "401", "rtsp://u:pw@h/x")
    assert reason_of(unauthorized) == ("error", "401 Unauthorized")
    assert reason_of(av.error.ConnectionRefusedError(111, "Connection refused")) == (
        "offline",
        "connection refused",
    )
    assert reason_of(av.error.FileNotFoundError(2, "No such file")) == ("error", "no such device")
    assert reason_of(TimeoutError()) == ("offline", "timed out")
    assert reason_of(OSError(113, "No route to host")) == ("offline", "no route to host")


def test_a_usb_webcam_is_opened_as_a_v4l2_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """What FFmpeg is asked to open; a real /dev/video stays unproven here (none on this machine)."""
    opened: list[tuple[str, dict[str, Any]]] = []

    def fake_open(url: str, **kw: Any) -> Any:
        opened.append((url, kw))
        raise av.error.PermissionError(13, "Permission denied")

    monkeypatch.setattr(av, "open", fake_open)
    changes: list[tuple[str, str | None]] = []
    settings = CameraSettings(id="desk", source="usb", device="/dev/video2", resolution=(1280, 720), fps=15)
    source = make_live_source(settings, None, lambda state, reason: changes.append((state, reason)))
    source.start()
    try:
        wait_until(lambda: ("error", "permission denied") in changes)
    finally:
        source.stop()
    url, kw = opened[0]
    assert (url, kw["format"], kw["options"]) == (
        "/dev/video2",
        "v4l2",
        {"video_size": "1280x720", "framerate": "15"},
    )


class FlakyFeed:
    """Fails once, then gives grey pictures until stopped."""

    name, shown = "fake", "fake://"

    def __init__(self) -> None:
        self.opened = 0

    def pictures(self, stop: threading.Event) -> Iterator[Picture]:
        self.opened += 1
        if self.opened == 1:
            raise ConnectionRefusedError
        while not stop.wait(0.01):
            yield Picture(
                (64, 48), lambda size: np.full((size[1], size[0]), 128, np.uint8), lambda: b"\xff\xd8"
            )


def test_a_failed_feed_is_reopened_and_read_at_the_configured_rate() -> None:
    changes: list[tuple[str, str | None]] = []
    feed = FlakyFeed()
    source = LiveSource("t", feed, (32, 24), fps=50, on_state=lambda s, r: changes.append((s, r)))
    source.start()
    try:
        frame = None
        while frame is None:
            frame = source.read(want_main=True)
        assert frame.lores_y.shape == (24, 32) and frame.main == b"\xff\xd8" and frame.size == (64, 48)
        assert changes == [("offline", "starting"), ("offline", "connection refused"), ("online", None)]
        assert feed.opened == 2
    finally:
        source.stop()
    assert source.read() is None  # stopped


def test_a_photo_shown_to_the_camera_is_its_snapshot(tmp_path: Path) -> None:
    bus = LocalBus("camera/door")
    settings = CameraSettings.model_validate(
        {"trigger": "manual", "replay": {"dir": str(PHOTO.parent), "fps": 20}}
    )
    service = CameraService(settings, tmp_path, bus)
    service.start()
    bus.start()
    try:
        t = bus.topics
        cmd = ShowCommand(request_id="shown-1")
        bus.inject(t.camera_cmd_show("door"), PHOTO.read_bytes(), user_properties=meta_property(cmd))
        bus.inject(t.camera_cmd_show("door"), b"GIF89a not a jpeg")
        bus.drain()
        wait_until(lambda: any(m.topic == t.snapshot("door") for m in bus.published))
        snap = next(m for m in bus.published if m.topic == t.snapshot("door"))
        meta = parse_meta(SnapshotMeta, snap.user_properties)
        assert (meta.event_id, meta.trigger, meta.burst, snap.payload) == (
            "shown-1",
            "manual",
            1,
            PHOTO.read_bytes(),
        )
        errors = [parse(ErrorReport, m.payload) for m in bus.published if m.topic == t.error("camera/door")]
        assert [e.error for e in errors] == ["bad_payload"] and "JPEG" in errors[0].detail
    finally:
        service.stop()
        bus.close()
