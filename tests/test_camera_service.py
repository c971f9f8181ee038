"""CameraService on the in-memory bus: events and bursts, commands, enabled state, PIR (gpiozero's
MockFactory), and the snapshot spool."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from PIL import Image

from camera_node import synthetic
from camera_node.sender import Snapshot, SnapshotSender
from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from camera_node.sources import Frame, WantMain, luma, wanted
from homesec.bus import LocalBus
from homesec.config import Config
from homesec.contract import (
    CameraEnabled,
    CaptureCommand,
    EnableCommand,
    MotionEvent,
    SnapshotMeta,
    Topics,
    parse,
    parse_meta,
)
from homesec.spool import DiskSpool

WALK_IN = Path(__file__).parent / "data" / "replay" / "walk_in"
T = Topics()
CAM = "door"


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def make_config(tmp_path: Path, **camera: Any) -> Config:
    fields: dict[str, Any] = {
        "replay": {"dir": str(WALK_IN), "fps": 40, "loop": False},
        "motion": {"event_gap_s": 0.3},
        "burst": {"count": 3, "interval_s": 0.02},
        "cooldown_s": 0,
        "publish_timeout_s": 2,
    }
    fields.update(camera)
    return Config(data_dir=tmp_path / "data", camera=CameraSettings.model_validate(fields))


def snapshots(bus: LocalBus) -> list[tuple[SnapshotMeta, bytes]]:
    msgs = [m for m in list(bus.published) if m.topic == T.snapshot(CAM)]
    return [(parse_meta(SnapshotMeta, m.user_properties), m.payload) for m in msgs]


def motions(bus: LocalBus) -> list[MotionEvent]:
    return [parse(MotionEvent, p) for p in bus.payloads(T.motion(CAM))]


def enabled_states(bus: LocalBus) -> list[bool]:
    return [parse(CameraEnabled, p).enabled for p in bus.payloads(T.camera_enabled(CAM))]


class ScriptedSource:
    """A live-ish source whose scene the test switches (a list of RGB frames, looped)."""

    lores_size = (320, 240)

    def __init__(self, scene: list[np.ndarray], fps: float = 50) -> None:
        self.scene, self.fps, self.i = scene, fps, 0
        self._lores: dict[int, np.ndarray] = {}

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read(self, want_main: WantMain = False) -> Frame:
        time.sleep(1 / self.fps)
        rgb = self.scene[self.i % len(self.scene)]
        self.i += 1
        y = self._lores.setdefault(id(rgb), luma(Image.fromarray(rgb), self.lores_size))
        main = rgb if wanted(want_main) else None
        return Frame(y, main, (rgb.shape[1], rgb.shape[0]), time.monotonic(), self.i)


@pytest.fixture
def running() -> Iterator[list[CameraService]]:
    """Services a test started; stopped at the end whatever happens."""
    services: list[CameraService] = []
    yield services
    for s in services:
        s.stop()


def start(services: list[CameraService], config: Config, bus: LocalBus, **kw: Any) -> CameraService:
    svc = CameraService(config, bus, **kw)
    svc.start()
    services.append(svc)
    return svc


# ------------------------------------------------------------------------------------- motion


def test_walk_in_gives_one_event_and_a_burst(tmp_path: Path, running: list[CameraService]) -> None:
    bus = LocalBus(f"camera/{CAM}")
    svc = start(running, make_config(tmp_path), bus)
    wait_until(lambda: len(motions(bus)) == 2 and svc.sender.idle and len(snapshots(bus)) == 3)
    start_ev, end_ev = motions(bus)
    assert (start_ev.state, end_ev.state, start_ev.trigger) == ("start", "end", "motion")
    assert start_ev.event_id == end_ev.event_id and start_ev.score and start_ev.score > 0
    shots = snapshots(bus)
    assert [m.seq for m, _ in shots] == [0, 1, 2]
    for meta, jpeg in shots:
        assert (meta.event_id, meta.burst, meta.trigger, meta.camera) == (start_ev.event_id, 3, "motion", CAM)
        assert (meta.width, meta.height) == (480, 360)
        assert Image.open(io.BytesIO(jpeg)).size == (480, 360)
        assert meta.motion_box is not None
        x1, y1, x2, y2 = meta.motion_box
        assert 0 <= x1 < x2 <= 480 and 0 <= y1 < y2 <= 360 and y2 > 300  # full-res pixels, figure's feet
    assert enabled_states(bus)[0] is True
    assert bus.retained[T.camera_enabled(CAM)].retain


def test_manual_capture_uses_request_id_as_event(tmp_path: Path, running: list[CameraService]) -> None:
    bus = LocalBus(f"camera/{CAM}")
    config = make_config(tmp_path, trigger="manual", replay={"dir": str(WALK_IN), "fps": 40, "loop": True})
    svc = start(running, config, bus)
    assert svc.detector is None
    bus.inject(T.camera_cmd_capture(CAM), CaptureCommand(request_id="req-42", burst=2))
    wait_until(lambda: len(snapshots(bus)) == 2 and len(motions(bus)) == 2)
    metas = [m for m, _ in snapshots(bus)]
    assert [(m.event_id, m.seq, m.burst, m.trigger, m.motion_box) for m in metas] == [
        ("req-42", 0, 2, "manual", None),
        ("req-42", 1, 2, "manual", None),
    ]
    assert [(e.state, e.trigger, e.event_id) for e in motions(bus)] == [
        ("start", "manual", "req-42"),
        ("end", "manual", "req-42"),
    ]
    # an unsafe request id is not reused as an event id (it may end up in file names)
    bus.inject(T.camera_cmd_capture(CAM), CaptureCommand(request_id="../../etc", burst=1))
    wait_until(lambda: len(snapshots(bus)) == 3)
    assert snapshots(bus)[2][0].event_id != "../../etc"


def test_bad_command_is_reported_and_the_camera_goes_on(tmp_path: Path, running: list[CameraService]) -> None:
    bus = LocalBus(f"camera/{CAM}")
    config = make_config(tmp_path, trigger="manual", replay={"dir": str(WALK_IN), "fps": 40, "loop": True})
    start(running, config, bus)
    bus.inject(T.camera_cmd_enable(CAM), b'{"enabled": "maybe"}')
    bus.inject(T.camera_cmd_capture(CAM), b"not json")
    assert [e.error for e in bus.errors] == ["bad_payload", "bad_payload"]
    bus.inject(T.camera_cmd_capture(CAM), CaptureCommand(burst=1))
    wait_until(lambda: len(snapshots(bus)) == 1)


# ------------------------------------------------------------------------------------ enabled


def test_disable_persists_across_restart(tmp_path: Path, running: list[CameraService]) -> None:
    config = make_config(tmp_path, trigger="manual", replay={"dir": str(WALK_IN), "fps": 40, "loop": True})
    bus = LocalBus(f"camera/{CAM}")
    svc = start(running, config, bus)
    wait_until(lambda: enabled_states(bus) == [True])
    bus.inject(T.camera_cmd_enable(CAM), EnableCommand(enabled=False))
    assert enabled_states(bus) == [True, False] and bus.retained[T.camera_enabled(CAM)].retain
    bus.inject(T.camera_cmd_capture(CAM), CaptureCommand(burst=1))
    assert [e.error for e in bus.errors] == ["camera_disabled"]
    svc.stop()
    running.remove(svc)

    bus2 = LocalBus(f"camera/{CAM}")
    svc2 = start(running, config, bus2)
    assert not svc2.enabled
    wait_until(lambda: enabled_states(bus2) == [False])  # re-published, retained, on start
    bus2.inject(T.camera_cmd_enable(CAM), EnableCommand(enabled=True))
    bus2.inject(T.camera_cmd_capture(CAM), CaptureCommand(burst=1))
    wait_until(lambda: len(snapshots(bus2)) == 1)
    assert snapshots(bus) == []


def test_disabled_camera_ignores_motion(tmp_path: Path, running: list[CameraService]) -> None:
    config = make_config(tmp_path, enabled=False)
    bus = LocalBus(f"camera/{CAM}")
    svc = start(running, config, bus)
    assert svc._thread is not None
    svc._thread.join(10)  # the non-looping replay has ended
    assert motions(bus) == [] and snapshots(bus) == []


# ---------------------------------------------------------------------------------------- PIR


def test_pir_trigger_with_mock_pin(tmp_path: Path, running: list[CameraService]) -> None:
    factory = MockFactory()
    bus = LocalBus(f"camera/{CAM}")
    config = make_config(tmp_path, trigger="pir", pir={"pin": 17})
    svc = start(running, config, bus, source=ScriptedSource(synthetic.static_noise(n=3)), pin_factory=factory)
    assert svc.pir.wait_for_no_motion(timeout=1)  # let the sensor's queue settle first
    time.sleep(0.3)
    assert motions(bus) == []
    factory.pin(17).drive_high()
    wait_until(lambda: len(snapshots(bus)) == 3)
    assert {m.trigger for m, _ in snapshots(bus)} == {"pir"}
    assert [e.state for e in motions(bus)] == ["start"]
    factory.pin(17).drive_low()
    wait_until(lambda: [e.state for e in motions(bus)] == ["start", "end"])


def test_pir_arms_and_frame_motion_confirms(tmp_path: Path, running: list[CameraService]) -> None:
    factory = MockFactory()
    bus = LocalBus(f"camera/{CAM}")
    still = synthetic.static_noise(n=3)
    walking = synthetic.walk_in(empty=0, walking=10, standing=0)
    source = ScriptedSource(walking)
    config = make_config(tmp_path, trigger="pir+motion", pir={"pin": 27, "confirm_window_s": 1.0})
    svc = start(running, config, bus, source=source, pin_factory=factory)
    assert svc.pir.wait_for_no_motion(timeout=1)
    time.sleep(0.5)
    assert motions(bus) == []  # frame motion alone does not start an event
    source.scene = still
    factory.pin(27).drive_high()
    time.sleep(0.5)
    assert motions(bus) == []  # nor does the PIR alone
    source.scene = walking
    wait_until(lambda: len(snapshots(bus)) == 3)
    assert [(e.state, e.trigger) for e in motions(bus)] == [("start", "pir+motion")]
    assert all(m.motion_box is not None for m, _ in snapshots(bus))


def test_pir_without_gpio_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "nonexistent")
    svc = CameraService(make_config(tmp_path, trigger="pir"), LocalBus(f"camera/{CAM}"))
    with pytest.raises(RuntimeError, match="needs a PIR on GPIO 17"):
        svc.start()
    svc.stop()


# -------------------------------------------------------------------------------------- spool


def meta(seq: int) -> SnapshotMeta:
    return SnapshotMeta(camera=CAM, event_id="e1", seq=seq, burst=9, trigger="manual", width=8, height=8)


def test_sender_spools_while_offline_and_drains_in_order(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}")
    bus.online = False
    spool = DiskSpool(tmp_path / "spool", max_items=100, max_bytes=10_000_000)
    sender = SnapshotSender(bus, T.snapshot(CAM), spool, retry_s=0.05)
    sender.start()
    try:
        image = np.zeros((8, 8, 3), np.uint8)
        for seq in range(3):
            sender.submit(Snapshot(image, meta(seq)))
        wait_until(lambda: len(spool) == 3)
        assert snapshots(bus) == []
        bus.online = True
        sender.submit(Snapshot(b"\xff\xd8late", meta(3)))  # arrives while the spool drains: goes last
        wait_until(lambda: sender.idle and len(snapshots(bus)) == 4)
        assert [m.seq for m, _ in snapshots(bus)] == [0, 1, 2, 3]
        assert snapshots(bus)[3][1] == b"\xff\xd8late"
    finally:
        sender.stop()


def test_spool_survives_restart_and_is_bounded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bus = LocalBus(f"camera/{CAM}")
    bus.online = False
    spool = DiskSpool(tmp_path / "spool", max_items=2, max_bytes=10_000_000)
    sender = SnapshotSender(bus, T.snapshot(CAM), spool, retry_s=0.05)
    sender.start()
    with caplog.at_level(logging.WARNING):
        for seq in range(3):
            sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq)))
        wait_until(lambda: sender.spooled == 3)
    sender.stop()
    assert "dropping oldest" in caplog.text
    # a new process finds the two newest on disk and sends them once the broker is back
    bus.online = True
    again = SnapshotSender(bus, T.snapshot(CAM), DiskSpool(tmp_path / "spool", 2, 10_000_000), retry_s=0.05)
    again.start()
    try:
        wait_until(lambda: len(snapshots(bus)) == 2)
        assert [(m.seq, p) for m, p in snapshots(bus)] == [(1, b"jpeg1"), (2, b"jpeg2")]
    finally:
        again.stop()


def test_snapshots_in_memory_at_stop_go_to_disk(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}")
    gate = threading.Event()
    slow_publish = bus.publish_confirmed

    def blocked(*args: Any, **kw: Any) -> bool:
        gate.wait(5)
        return False

    bus.publish_confirmed = blocked  # type: ignore[method-assign]
    spool = DiskSpool(tmp_path / "spool", 100, 10_000_000)
    sender = SnapshotSender(bus, T.snapshot(CAM), spool, retry_s=0.05)
    sender.start()
    for seq in range(3):
        sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq)))
    time.sleep(0.1)  # the first one is stuck in publish
    stopper = threading.Thread(target=sender.stop)
    stopper.start()
    gate.set()
    stopper.join(10)
    assert len(spool) == 3
    bus.publish_confirmed = slow_publish  # type: ignore[method-assign]


def test_a_snapshot_too_large_for_the_broker_is_reported_and_does_not_block_the_rest(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}", max_payload_bytes=100)
    spool = DiskSpool(tmp_path / "spool", max_items=100, max_bytes=10_000_000)
    sender = SnapshotSender(bus, T.snapshot(CAM), spool, retry_s=0.05)
    sender.start()
    try:
        sender.submit(Snapshot(b"x" * 200, meta(0)))
        sender.submit(Snapshot(b"small", meta(1)))
        wait_until(lambda: len(snapshots(bus)) == 1)
        assert [(m.seq, p) for m, p in snapshots(bus)] == [(1, b"small")]
        assert [e.error for e in bus.errors] == ["payload_too_large"]
        assert len(spool) == 0
    finally:
        sender.stop()
