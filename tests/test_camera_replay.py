"""Replayed scenes through the real ReplaySource, MotionDetector and event machine: one walk-in is one
event; sensor noise and a light switching on are none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from camera_node import synthetic
from camera_node.events import EventEdge, EventMachine
from camera_node.motion import Box, FrameAnalysis, MotionDetector, MotionParams
from camera_node.settings import CameraSettings, MotionSettings
from camera_node.sources import Frame, ReplaySource, make_source, to_jpeg
from tests.helpers import FakeClock

WALK_IN = Path(__file__).parent / "data" / "replay" / "walk_in"
PARAMS = MotionParams.from_settings(MotionSettings())
EVENT_GAP_S = 1.0
SCENE_FORMAT = "bmp"  # quick to write and read; the detector sees the same pixels as from a PNG


@dataclass(frozen=True)
class Replayed:
    """One frame: the detector's verdict, and the event edge it made."""

    analysis: FrameAnalysis | None
    box: Box | None
    event: EventEdge | None


def replay(directory: Path, params: MotionParams = PARAMS) -> list[Replayed]:
    source = ReplaySource(directory, fps=10, loop=False, realtime=False)
    source.start()
    detector = MotionDetector(params)
    events = EventMachine("motion", EVENT_GAP_S)
    results = []
    while (frame := source.read()) is not None:
        r = detector.update(frame.lores_y)
        results.append(Replayed(r.analysis, r.box, events.step(frame.ts, motion=r.motion, pir=False)))
    return results


def edges(results: list[Replayed]) -> list[str]:
    return [r.event for r in results if r.event]


def test_someone_walking_in_is_exactly_one_event() -> None:
    results = replay(WALK_IN)
    assert len(results) == 22
    assert edges(results) == ["start", "end"]
    start = next(i for i, r in enumerate(results) if r.event == "start")
    assert 3 <= start <= 6  # the figure enters at frame 3; two frames in a row confirm it
    boxes = [r.box for r in results if r.box]
    assert boxes and all(b[3] > 200 for b in boxes)  # the figure stands on the floor (bottom of the frame)


def test_generated_walk_in_with_drawn_figure(tmp_path: Path) -> None:
    synthetic.write_scene(synthetic.walk_in((320, 240)), tmp_path, fmt=SCENE_FORMAT)
    assert edges(replay(tmp_path)) == ["start", "end"]


def test_static_sensor_noise_is_no_event(tmp_path: Path) -> None:
    synthetic.write_scene(synthetic.static_noise((320, 240), sigma=12), tmp_path, fmt=SCENE_FORMAT)
    unfiltered = replay(tmp_path, MotionParams(despeckle=False))
    assert all(r.analysis.changed_px > 0 for r in unfiltered[1:] if r.analysis)  # the noise is real
    assert edges(replay(tmp_path)) == []


@pytest.mark.parametrize("ramp", [1, 3])
def test_light_switching_on_is_no_event(tmp_path: Path, ramp: int) -> None:
    synthetic.write_scene(synthetic.light_switch((320, 240), jump=70, ramp=ramp), tmp_path, fmt=SCENE_FORMAT)
    assert edges(replay(tmp_path)) == []


def test_light_switch_flagged_when_not_compensating(tmp_path: Path) -> None:
    synthetic.write_scene(synthetic.light_switch((320, 240), jump=70), tmp_path, fmt=SCENE_FORMAT)
    results = replay(tmp_path, MotionParams(compensate=False))
    assert edges(results) == []
    assert [i for i, r in enumerate(results) if r.analysis and r.analysis.light_switch] == [10]


# ---------------------------------------------------------------------------------------- source


def read_all(source: ReplaySource, n: int, want_main: bool = False) -> list[Frame]:
    out = []
    for _ in range(n):
        frame = source.read(want_main)
        if frame is None:
            break
        out.append(frame)
    return out


def test_replay_order_rate_loop_and_end(tmp_path: Path) -> None:
    for i, v in enumerate([10, 20, 30]):
        synthetic.write_scene([np.full((48, 64, 3), v, np.uint8)], tmp_path / "x")
        (tmp_path / "x" / "frame-000.png").rename(tmp_path / f"{9 - i}.png")  # names sort backwards
    src = ReplaySource(tmp_path, fps=4, loop=True, lores_size=(32, 24), realtime=False, clock=lambda: 100.0)
    src.start()
    frames = read_all(src, 5)
    assert [int(f.lores_y[0, 0]) for f in frames] == [30, 20, 10, 30, 20]  # sorted by name, looping
    assert [f.ts for f in frames] == [100.0, 100.25, 100.5, 100.75, 101.0]
    assert frames[0].lores_y.shape == (24, 32) and frames[0].size == (64, 48)
    once = ReplaySource(tmp_path, fps=4, loop=False, realtime=False)
    once.start()
    assert len(read_all(once, 10)) == 3


def test_replay_main_image_only_when_asked() -> None:
    src = ReplaySource(WALK_IN, realtime=False)
    src.start()
    assert src.read().main is None  # type: ignore[union-attr]
    frame = src.read(want_main=True)
    assert frame is not None and isinstance(frame.main, bytes)  # a JPEG file passes through as is
    assert frame.main == sorted(WALK_IN.glob("*.jpg"))[1].read_bytes()
    assert to_jpeg(frame.main, 50) is frame.main


def test_png_main_is_an_rgb_array_encoded_on_demand(tmp_path: Path) -> None:
    synthetic.write_scene(synthetic.static_noise((64, 48), n=1), tmp_path)
    src = ReplaySource(tmp_path, realtime=False, lores_size=(32, 24))
    src.start()
    frame = src.read(want_main=True)
    assert frame is not None and isinstance(frame.main, np.ndarray) and frame.main.shape == (48, 64, 3)
    assert to_jpeg(frame.main, 80)[:2] == b"\xff\xd8"


def test_replay_realtime_paces_and_stops(tmp_path: Path) -> None:
    synthetic.write_scene(synthetic.static_noise((32, 24), n=2), tmp_path)
    now = [0.0]
    src = ReplaySource(tmp_path, fps=1000, lores_size=(32, 24), clock=lambda: now[0])
    src.start()
    assert src.read() is not None
    src.stop()
    assert src.read() is None


def test_source_errors_are_readable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        ReplaySource(tmp_path / "nope")
    with pytest.raises(ValueError, match="no images"):
        ReplaySource(tmp_path)
    with pytest.raises(ValueError, match=r"needs camera\.replay\.dir"):
        make_source(CameraSettings(source="replay"))


def test_picamera2_source_fails_clearly_without_picamera2() -> None:
    source = make_source(CameraSettings(source="picamera2"))
    with pytest.raises(RuntimeError, match="python3-picamera2"):
        source.start()


def test_want_main_is_asked_once_the_frame_is_due() -> None:
    """A trigger that arrives while read() waits for the frame still gets that frame's full image."""
    asked: list[float] = []
    clock = FakeClock()

    def want() -> bool:
        asked.append(clock())
        return True

    src = ReplaySource(WALK_IN, fps=5, loop=False, lores_size=(80, 60), clock=clock, sleep=clock.sleep)
    src.start()
    first = src.read(want_main=want)
    start = clock()
    second = src.read(want_main=want)
    assert first is not None and first.main is not None
    assert second is not None and second.main is not None
    assert len(asked) == 2 and asked[1] - start >= 0.15  # asked after the ~1/5 s wait, not before it
