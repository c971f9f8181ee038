"""CameraService on the in-memory bus and a fake clock: events and bursts, commands, enabled state, PIR
(gpiozero's MockFactory), and the snapshot spool."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
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
from camera_node.sources import Frame, ReplaySource, WantMain, luma, wanted
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
from tests.helpers import FakeClock, LocalBus, answer_snapshots, wait_until

WALK_IN = Path(__file__).parent / "data" / "replay" / "walk_in"
T = Topics()
CAM = "door"
STEP_TIMEOUT_S = 10.0


def camera_settings(**camera: Any) -> CameraSettings:
    fields: dict[str, Any] = {
        "replay": {"dir": str(WALK_IN), "fps": 40, "loop": False},
        "motion": {"event_gap_s": 0.3},
        "burst": {"count": 3, "interval_s": 0.02},
        "cooldown_s": 0,
        "publish_timeout_s": 2,
    }
    fields.update(camera)
    return CameraSettings.model_validate(fields)


def snapshots(bus: LocalBus) -> list[tuple[SnapshotMeta, bytes]]:
    msgs = [m for m in list(bus.published) if m.topic == T.snapshot(CAM)]
    return [(parse_meta(SnapshotMeta, m.user_properties), m.payload) for m in msgs]


def motions(bus: LocalBus) -> list[MotionEvent]:
    return [parse(MotionEvent, p) for p in bus.payloads(T.motion(CAM))]


def enabled_states(bus: LocalBus) -> list[bool]:
    return [parse(CameraEnabled, p).enabled for p in bus.payloads(T.camera_enabled(CAM))]


def replayed_walk_in(clock: FakeClock) -> ReplaySource:
    """The walk-in scene at 40 fps, paced on the fake clock: the whole replay in no wall time."""
    return ReplaySource(WALK_IN, fps=40, loop=False, clock=clock, sleep=clock.sleep)


class SteppedSource:
    """A live source driven by the test: the frame loop gets a frame only on `step()`, 1/fps later on
    the fake clock; the scene (a list of RGB frames, looped) can be switched between steps."""

    lores_size = (320, 240)

    def __init__(self, scene: list[np.ndarray], clock: FakeClock, fps: float = 20) -> None:
        self.scene, self.clock, self.fps, self.i = scene, clock, fps, 0
        self._lores: dict[int, np.ndarray] = {}
        self._cond = threading.Condition()
        self._granted = 0  # frames the test has let through
        self._reads = 0  # read() calls the frame loop made
        self._closed = False

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None:
        """End the stream: the frame loop's next (or current) read returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_reading(self) -> None:
        """Until the frame loop waits for its next frame (everything before it is done)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._reads > self._granted or self._closed, STEP_TIMEOUT_S)
        assert ok, "the frame loop did not come back for a frame"

    def step(self, frames: int = 1) -> None:
        """Hand the loop `frames` frames, one at a time; returns once it has dealt with the last."""
        for _ in range(frames):
            self.wait_reading()
            with self._cond:
                self._granted += 1
                self._cond.notify_all()
            self.wait_reading()

    def _granted_read(self) -> bool:
        """Count a read, then wait until the test grants it: False once the stream is closed."""
        with self._cond:
            self._reads += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._granted >= self._reads or self._closed)
            return not self._closed

    def read(self, want_main: WantMain = False) -> Frame | None:
        if not self._granted_read():
            return None
        return self._frame(want_main)

    def _frame(self, want_main: WantMain) -> Frame:
        """The scene's next frame, 1/fps after the last on the fake clock."""
        self.clock.advance(1 / self.fps)
        rgb = self.scene[self.i % len(self.scene)]
        self.i += 1
        y = self._lores.setdefault(id(rgb), luma(Image.fromarray(rgb), self.lores_size))
        main = rgb if wanted(want_main) else None
        return Frame(y, main, (rgb.shape[1], rgb.shape[0]), self.clock(), self.i)


class StallingSource(SteppedSource):
    """A live stream that can stall: after `stall(reads)`, that many reads return no frame, each
    `idle_s` later on the fake clock, as `LiveSource.read` does while its stream is down."""

    live = True
    idle_s = 1.0

    def __init__(self, scene: list[np.ndarray], clock: FakeClock, fps: float = 20) -> None:
        super().__init__(scene, clock, fps)
        self._stalls = 0

    def stall(self, reads: int = 1) -> None:
        with self._cond:
            self._stalls += reads
        self.step(reads)

    def read(self, want_main: WantMain = False) -> Frame | None:
        if not self._granted_read():
            return None
        with self._cond:
            stalled, self._stalls = self._stalls > 0, max(0, self._stalls - 1)
        if stalled:
            self.clock.advance(self.idle_s)
            return None
        return self._frame(want_main)


@pytest.fixture
def running() -> Iterator[list[CameraService]]:
    """Services a test started; stopped at the end whatever happens."""
    services: list[CameraService] = []
    yield services
    for s in services:
        stop(s)


def start(
    services: list[CameraService], settings: CameraSettings, tmp_path: Path, bus: LocalBus, **kw: Any
) -> CameraService:
    svc = CameraService(settings, tmp_path / "data", bus, **kw)
    svc.start()
    services.append(svc)
    if isinstance(svc.source, SteppedSource):
        svc.source.wait_reading()  # the loop's first round (state published, commands read) is done
    return svc


def stop(svc: CameraService) -> None:
    if isinstance(svc.source, SteppedSource):
        svc.source.close()
    svc.stop()


def stepped(scene: list[np.ndarray] | None = None) -> tuple[SteppedSource, FakeClock]:
    clock = FakeClock()
    return SteppedSource(scene or synthetic.static_noise(n=3), clock), clock


# ------------------------------------------------------------------------------------- motion


def test_walk_in_gives_one_event_and_a_burst(tmp_path: Path, running: list[CameraService]) -> None:
    bus = LocalBus(f"camera/{CAM}")
    answer_snapshots(bus)  # a recognizer: the camera keeps each snapshot until its result
    clock = FakeClock()
    svc = start(running, camera_settings(), tmp_path, bus, source=replayed_walk_in(clock), clock=clock)
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


def test_the_replay_source_from_the_config_drives_the_service(
    tmp_path: Path, running: list[CameraService]
) -> None:
    bus = LocalBus(f"camera/{CAM}")
    answer_snapshots(bus)  # a recognizer: the camera keeps each snapshot until its result
    svc = start(
        running, camera_settings(replay={"dir": str(WALK_IN), "fps": 100, "loop": False}), tmp_path, bus
    )
    assert isinstance(svc.source, ReplaySource) and svc.source.files[0].parent == WALK_IN
    assert svc._thread is not None
    svc._thread.join(10)  # the non-looping replay has ended
    wait_until(lambda: svc.sender.idle)
    assert [e.state for e in motions(bus)] == ["start", "end"] and len(snapshots(bus)) == 3


def test_manual_capture_uses_request_id_as_event(tmp_path: Path, running: list[CameraService]) -> None:
    bus = LocalBus(f"camera/{CAM}")
    source, clock = stepped()
    svc = start(running, camera_settings(trigger="manual"), tmp_path, bus, source=source, clock=clock)
    assert svc.detector is None
    bus.inject(T.camera_cmd_capture(CAM), CaptureCommand(request_id="req-42", burst=2))
    source.step(3)  # the command is read after the first frame; a shot on each of the next two
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
    source.step(2)
    wait_until(lambda: len(snapshots(bus)) == 3)
    assert snapshots(bus)[2][0].event_id != "../../etc"


def test_bad_command_is_reported_and_the_camera_goes_on(tmp_path: Path, running: list[CameraService]) -> None:
    bus = LocalBus(f"camera/{CAM}")
    source, clock = stepped()
    start(running, camera_settings(trigger="manual"), tmp_path, bus, source=source, clock=clock)
    bus.inject(T.camera_cmd_enable(CAM), b'{"enabled": "maybe"}')
    bus.inject(T.camera_cmd_capture(CAM), b"not json")
    assert [e.error for e in bus.errors] == ["bad_payload", "bad_payload"]
    bus.inject(T.camera_cmd_capture(CAM), CaptureCommand(burst=1))
    source.step(2)
    wait_until(lambda: len(snapshots(bus)) == 1)


# ------------------------------------------------------------------------------------ enabled


def test_disable_persists_across_restart(tmp_path: Path, running: list[CameraService]) -> None:
    settings = camera_settings(trigger="manual")
    bus = LocalBus(f"camera/{CAM}")
    source, clock = stepped()
    svc = start(running, settings, tmp_path, bus, source=source, clock=clock)
    wait_until(lambda: enabled_states(bus) == [True])
    bus.inject(T.camera_cmd_enable(CAM), EnableCommand(enabled=False))
    assert enabled_states(bus) == [True, False] and bus.retained[T.camera_enabled(CAM)].retain
    bus.inject(T.camera_cmd_capture(CAM), CaptureCommand(burst=1))
    assert [e.error for e in bus.errors] == ["camera_disabled"]
    stop(svc)
    running.remove(svc)

    bus2 = LocalBus(f"camera/{CAM}")
    source2, clock2 = stepped()
    svc2 = start(running, settings, tmp_path, bus2, source=source2, clock=clock2)
    assert not svc2.enabled
    wait_until(lambda: enabled_states(bus2) == [False])  # re-published, retained, on start
    bus2.inject(T.camera_cmd_enable(CAM), EnableCommand(enabled=True))
    bus2.inject(T.camera_cmd_capture(CAM), CaptureCommand(burst=1))
    source2.step(2)
    wait_until(lambda: len(snapshots(bus2)) == 1)
    assert snapshots(bus) == []


def test_disabled_camera_ignores_motion(tmp_path: Path, running: list[CameraService]) -> None:
    bus = LocalBus(f"camera/{CAM}")
    clock = FakeClock()
    svc = start(
        running, camera_settings(enabled=False), tmp_path, bus, source=replayed_walk_in(clock), clock=clock
    )
    assert svc._thread is not None
    svc._thread.join(10)  # the non-looping replay has ended
    assert motions(bus) == [] and snapshots(bus) == []


def test_disabling_ends_the_open_event_and_drops_the_burst(
    tmp_path: Path, running: list[CameraService]
) -> None:
    bus = LocalBus(f"camera/{CAM}")
    answer_snapshots(bus)  # a recognizer: the camera keeps each snapshot until its result
    source, clock = stepped(synthetic.walk_in(empty=0, walking=10, standing=0))
    settings = camera_settings(burst={"count": 5, "interval_s": 0.02})
    svc = start(running, settings, tmp_path, bus, source=source, clock=clock)
    source.step(4)  # two changes in a row start the event; the next frame is its first shot
    assert [e.state for e in motions(bus)] == ["start"]
    bus.inject(T.camera_cmd_enable(CAM), EnableCommand(enabled=False))
    source.step(5)  # frames enough for the rest of the burst, had it not been dropped
    wait_until(lambda: svc.sender.idle)
    assert [e.state for e in motions(bus)] == ["start", "end"]
    assert len({e.event_id for e in motions(bus)}) == 1
    assert 1 <= len(snapshots(bus)) <= 2  # the first shot, and at most the one in flight at the command


def test_an_event_open_when_the_stream_stalls_ends_after_its_gap(
    tmp_path: Path, running: list[CameraService]
) -> None:
    """A live stream that drops mid-event: no frames is no motion, so the event ends `event_gap_s`
    later, not when the stream comes back (which may be minutes, or never)."""
    bus = LocalBus(f"camera/{CAM}")
    answer_snapshots(bus)
    clock = FakeClock()
    source = StallingSource(synthetic.walk_in(empty=0, walking=10, standing=0), clock)
    svc = start(running, camera_settings(), tmp_path, bus, source=source, clock=clock)
    source.step(4)  # two changes in a row start the event
    assert [e.state for e in motions(bus)] == ["start"]
    source.stall()  # a second without a frame: longer than the 0.3 s gap
    assert [e.state for e in motions(bus)] == ["start", "end"]
    wait_until(lambda: svc.sender.idle)


# ---------------------------------------------------------------------------------------- PIR


def test_pir_trigger_with_mock_pin(tmp_path: Path, running: list[CameraService]) -> None:
    factory = MockFactory()
    bus = LocalBus(f"camera/{CAM}")
    source, clock = stepped()
    settings = camera_settings(trigger="pir", pir={"pin": 17})
    svc = start(running, settings, tmp_path, bus, source=source, pin_factory=factory, clock=clock)
    assert svc.pir.wait_for_no_motion(timeout=1)  # let the sensor's queue settle first
    source.step(6)
    assert motions(bus) == []
    factory.pin(17).drive_high()
    assert svc.pir.wait_for_motion(timeout=5)
    source.step(4)  # the event starts on the first frame, its burst is taken on the next ones
    wait_until(lambda: len(snapshots(bus)) == 3)
    assert {m.trigger for m, _ in snapshots(bus)} == {"pir"}
    assert [e.state for e in motions(bus)] == ["start"]
    factory.pin(17).drive_low()
    assert svc.pir.wait_for_no_motion(timeout=5)
    source.step(8)  # 0.4 s of frames without the PIR: past the 0.3 s gap
    wait_until(lambda: [e.state for e in motions(bus)] == ["start", "end"])


def test_pir_arms_and_frame_motion_confirms(tmp_path: Path, running: list[CameraService]) -> None:
    factory = MockFactory()
    bus = LocalBus(f"camera/{CAM}")
    still = synthetic.static_noise(n=3)
    walking = synthetic.walk_in(empty=0, walking=10, standing=0)
    source, clock = stepped(walking)
    settings = camera_settings(trigger="pir+motion", pir={"pin": 27, "confirm_window_s": 1.0})
    svc = start(running, settings, tmp_path, bus, source=source, pin_factory=factory, clock=clock)
    assert svc.pir.wait_for_no_motion(timeout=1)
    source.step(12)
    assert motions(bus) == []  # frame motion alone does not start an event
    source.scene = still
    source.step(2)  # the cut to another scene (a light switch, to the detector) comes before the PIR
    factory.pin(27).drive_high()
    assert svc.pir.wait_for_motion(timeout=5)
    source.step(6)
    assert motions(bus) == []  # nor does the PIR alone
    source.scene = walking
    # The cut back is a light switch again (5 frames ignored); then two changes in a row confirm the
    # PIR, which is still high, and the burst follows.
    source.step(12)
    wait_until(lambda: len(snapshots(bus)) == 3)
    assert [(e.state, e.trigger) for e in motions(bus)] == [("start", "pir+motion")]
    assert all(m.motion_box is not None for m, _ in snapshots(bus))


def test_pir_without_gpio_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "nonexistent")
    svc = CameraService(camera_settings(trigger="pir"), tmp_path / "data", LocalBus(f"camera/{CAM}"))
    with pytest.raises(RuntimeError, match="needs a PIR on GPIO 17"):
        svc.start()
    svc.stop()


# -------------------------------------------------------------------------------------- spool


def meta(seq: int) -> SnapshotMeta:
    return SnapshotMeta(camera=CAM, event_id="e1", seq=seq, burst=9, trigger="manual", width=8, height=8)


def test_sender_spools_while_offline_and_drains_in_order(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}")
    answer_snapshots(bus)  # a recognizer: the camera keeps each snapshot until its result
    bus.online = False
    spool = DiskSpool(tmp_path / "spool", max_items=100, max_bytes=10_000_000)
    sender = SnapshotSender(bus, T.snapshot(CAM), spool, result_topic=T.result(CAM), retry_s=0.05)
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
    sender = SnapshotSender(bus, T.snapshot(CAM), spool, result_topic=T.result(CAM), retry_s=0.05)
    sender.start()
    with caplog.at_level(logging.WARNING):
        for seq in range(3):
            sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq)))
        wait_until(lambda: sender.spooled == 3)
    sender.stop()
    assert "dropping oldest" in caplog.text
    assert [e.error for e in bus.errors] == ["spool_full"]  # on the error topic too, not only in the log
    # a new process finds the two newest on disk and sends them once the broker is back
    bus.online = True
    again = SnapshotSender(
        bus,
        T.snapshot(CAM),
        DiskSpool(tmp_path / "spool", 2, 10_000_000),
        result_topic=T.result(CAM),
        retry_s=0.05,
    )
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

    publishing = threading.Event()

    def blocked(*args: Any, **kw: Any) -> bool:
        publishing.set()
        gate.wait(5)
        return False

    bus.publish_confirmed = blocked  # type: ignore[method-assign]
    spool = DiskSpool(tmp_path / "spool", 100, 10_000_000)
    sender = SnapshotSender(bus, T.snapshot(CAM), spool, result_topic=T.result(CAM), retry_s=0.05)
    sender.start()
    for seq in range(3):
        sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq)))
    assert publishing.wait(5)  # the first one is stuck in publish
    stopper = threading.Thread(target=sender.stop)
    stopper.start()
    gate.set()
    stopper.join(10)
    assert len(spool) == 3
    bus.publish_confirmed = slow_publish  # type: ignore[method-assign]


def test_a_snapshot_too_large_for_the_broker_is_reported_and_does_not_block_the_rest(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}", max_payload_bytes=100)
    answer_snapshots(LocalBus("recognizer/stand-in", broker=bus.broker))  # the camera waits for results
    spool = DiskSpool(tmp_path / "spool", max_items=100, max_bytes=10_000_000)
    sender = SnapshotSender(bus, T.snapshot(CAM), spool, result_topic=T.result(CAM), retry_s=0.05)
    sender.start()
    try:
        sender.submit(Snapshot(b"x" * 200, meta(0)))
        sender.submit(Snapshot(b"small", meta(1)))
        wait_until(lambda: len(snapshots(bus)) == 1)
        assert [(m.seq, p) for m, p in snapshots(bus)] == [(1, b"small")]
        assert [e.error for e in bus.errors] == ["payload_too_large"]
        wait_until(lambda: sender.confirmed == 1)
        assert len(spool) == 0
    finally:
        sender.stop()
