"""Frame-differencing maths on small arrays: no wrapping, threshold, area, streaks, light, masks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camera_node.events import EventMachine
from camera_node.motion import (
    MotionDetector,
    MotionParams,
    analyze,
    bounding_box,
    build_active,
    changed_mask,
    despeckle,
    load_mask_png,
    min_area_px,
    rect_mask,
    signed_diff,
    to_full_resolution,
)
from camera_node.settings import MotionSettings

RAW = MotionParams(compensate=False, despeckle=False)  # the bare maths, no noise filters


def flat(value: int, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint8)


def with_blob(base: np.ndarray, value: int, box: tuple[int, int, int, int]) -> np.ndarray:
    out = base.copy()
    x1, y1, x2, y2 = box
    out[y1:y2, x1:x2] = value
    return out


# ---------------------------------------------------------------------------------- differences


def test_difference_does_not_wrap_like_uint8() -> None:
    prev, cur = np.array([[5]], dtype=np.uint8), np.array([[3]], dtype=np.uint8)
    assert int(np.subtract(cur, prev)[0, 0]) == 254  # what naive uint8 arithmetic gives
    assert abs(int(signed_diff(prev, cur)[0, 0])) == 2
    assert not changed_mask(signed_diff(prev, cur), threshold=25).any()


def test_uint8_wrap_would_turn_static_noise_into_motion() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(60, 120, size=(48, 64)).astype(np.int16)
    a = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
    b = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
    wrapped = np.subtract(b, a) > 25  # about half the pixels "changed"
    assert wrapped.mean() > 0.3
    assert changed_mask(signed_diff(a, b), 25).mean() == 0.0


def test_threshold_is_strictly_greater() -> None:
    prev = flat(100, (1, 3))
    cur = np.array([[125, 126, 74]], dtype=np.uint8)
    assert changed_mask(signed_diff(prev, cur), 25).tolist() == [[False, True, True]]


def test_min_area_fraction_or_pixels() -> None:
    assert min_area_px(0.01, 10_000) == 100
    assert min_area_px(0.0001, 100) == 1  # never zero
    assert min_area_px(50, 10_000) == 50
    assert min_area_px(1, 10_000) == 1


def test_area_below_minimum_is_not_motion() -> None:
    prev = flat(100)
    params = MotionParams(min_area=20, compensate=False, despeckle=False)
    small = analyze(prev, with_blob(prev, 200, (0, 0, 4, 4)), params)  # 16 px
    big = analyze(prev, with_blob(prev, 200, (0, 0, 5, 4)), params)  # 20 px
    assert (small.changed_px, small.over_area) == (16, False)
    assert (big.changed_px, big.over_area) == (20, True)


def test_bounding_box_and_noise_trimming() -> None:
    changed = np.zeros((100, 200), dtype=bool)
    changed[40:60, 100:150] = True  # 1000 px blob
    assert bounding_box(changed, trim=0) == (100, 40, 150, 60)
    changed[0, 0] = True  # one stray pixel: pulls an untrimmed box to the corner, not a trimmed one
    assert bounding_box(changed, trim=0) == (0, 0, 150, 60)
    assert bounding_box(changed) == (100, 40, 150, 60)
    assert bounding_box(np.zeros((4, 4), dtype=bool)) is None


def test_lores_box_to_full_resolution_padded_and_clipped() -> None:
    box = (80, 60, 160, 120)
    assert to_full_resolution(box, (320, 240), (1920, 1080), pad=0) == (480, 270, 960, 540)
    assert to_full_resolution(box, (320, 240), (1920, 1080), pad=0.1) == (432, 243, 1008, 567)
    assert to_full_resolution((0, 0, 320, 240), (320, 240), (1920, 1080), pad=0.5) == (0, 0, 1920, 1080)


def test_despeckle_keeps_blobs_and_drops_single_pixels() -> None:
    changed = np.zeros((10, 10), dtype=bool)
    changed[2, 2] = changed[7, 1] = True  # noise
    changed[4:8, 4:8] = True  # 4x4 blob
    out = despeckle(changed)
    assert not out[2, 2] and not out[7, 1]
    assert out[4:7, 4:7].all() and out.sum() == 9  # the blob shrinks by one row and column


def test_brightness_compensation_ignores_a_global_shift_but_not_a_blob() -> None:
    prev = flat(100)
    cur = with_blob(flat(130), 220, (2, 2, 8, 8))  # everything +30, and a blob
    plain = analyze(prev, cur, MotionParams(compensate=False, despeckle=False, light_switch=1.0))
    compensated = analyze(prev, cur, MotionParams(compensate=True, despeckle=False, light_switch=1.0))
    assert plain.changed_px == cur.size
    assert compensated.changed_px == 36
    assert compensated.box == (2, 2, 8, 8)


# ------------------------------------------------------------------------------- light and masks


def test_light_switch_is_not_motion() -> None:
    prev = flat(80)
    a = analyze(prev, flat(150), RAW)
    assert a.light_switch and not a.over_area and a.box is None
    # the same change on less than `light_switch` of the frame is motion
    b = analyze(prev, with_blob(prev, 150, (0, 0, 16, 24)), RAW)  # half the width: 50%, not more
    assert not b.light_switch and b.over_area


def test_light_switch_judged_on_raw_change_even_when_compensating() -> None:
    prev = flat(80)
    cur = with_blob(flat(150), 90, (0, 0, 32, 9))  # 62% of the frame brightened a lot, the rest a little
    a = analyze(prev, cur, MotionParams(compensate=True, despeckle=False))
    assert a.light_switch and not a.over_area


def test_detector_ignores_frames_after_a_light_switch() -> None:
    params = MotionParams(min_frames=1, light_switch_frames=2, compensate=False, despeckle=False)
    det = MotionDetector(params)
    dark, lit = flat(60), flat(160)
    blob = with_blob(lit, 250, (0, 0, 8, 8))
    motions = [det.update(f).motion for f in [dark, lit, blob, lit, blob, lit]]
    # frame 1 is the switch, frames 2-3 are settling (ignored), frame 4 is motion again
    assert motions == [False, False, False, False, True, True]
    assert det.light_switches == 1


def test_rect_mask_from_fractions() -> None:
    m = rect_mask((32, 24), [(0.0, 0.0, 0.5, 0.25)])
    assert m.shape == (24, 32)
    assert m[:6, :16].all() and m.sum() == 6 * 16


def test_ignored_region_does_not_count() -> None:
    prev = flat(100)
    cur = with_blob(prev, 200, (0, 0, 8, 8))  # motion inside the ignored corner only
    active = ~rect_mask((32, 24), [(0.0, 0.0, 0.5, 0.5)])
    assert analyze(prev, cur, RAW).over_area
    masked = analyze(prev, cur, RAW, active)
    assert masked.changed_px == 0 and not masked.over_area
    # and the area fraction is of the unmasked pixels: 64 px of 576 active
    other = analyze(prev, with_blob(prev, 200, (24, 16, 32, 24)), RAW, active)
    assert math.isclose(other.fraction, 64 / (32 * 24 - 16 * 12))


def test_mask_png_black_is_ignored(tmp_path: Path) -> None:
    img = np.full((48, 64), 255, dtype=np.uint8)
    img[:, :32] = 0  # left half black
    Image.fromarray(img).save(tmp_path / "mask.png")
    ignored = load_mask_png(tmp_path / "mask.png", (32, 24))  # resized to the lores size
    assert ignored.shape == (24, 32)
    assert ignored[:, :16].all() and not ignored[:, 16:].any()
    active = build_active(
        MotionSettings(mask_file=tmp_path / "mask.png", ignore=[(0.5, 0, 1, 0.5)]), (32, 24)
    )
    assert active is not None and active.sum() == 16 * 12


def test_mask_errors_are_readable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_mask_png(tmp_path / "missing.png", (32, 24))
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_mask_png(tmp_path / "bad.png", (32, 24))
    with pytest.raises(ValueError, match="whole frame"):
        build_active(MotionSettings(ignore=[(0, 0, 1, 1)]), (32, 24))
    assert build_active(MotionSettings(), (32, 24)) is None


# ---------------------------------------------------------------------------------------- streaks


def test_min_consecutive_frames() -> None:
    det = MotionDetector(MotionParams(min_frames=3, compensate=False, despeckle=False))
    still = flat(100)
    moved = [with_blob(still, 200, (x, 4, x + 6, 14)) for x in range(0, 24, 4)]
    seq = [still, moved[0], still, moved[1], moved[2], moved[3], moved[4]]
    result = [det.update(f) for f in seq]
    events = EventMachine("motion", gap_s=5.0)
    edges = [events.step(float(t), motion=r.motion, pir=False) for t, r in enumerate(result)]
    # frames 1-3 each differ from the one before: the third in a row is motion, and starts the event
    assert [r.motion for r in result] == [False, False, False, True, True, True, True]
    assert edges == [None, None, None, "start", None, None, None]
    assert result[3].box is not None and result[2].box is None


def test_streak_resets_on_a_quiet_frame() -> None:
    det = MotionDetector(MotionParams(min_frames=2, compensate=False, despeckle=False))
    a, b = flat(100), with_blob(flat(100), 200, (0, 0, 10, 10))
    # a->b change, b->b quiet, b->a change, a->a quiet: never two changes in a row
    assert not any(det.update(f).motion for f in [a, b, b, a, a, b, b])


def test_frame_size_change_restarts_comparison() -> None:
    det = MotionDetector(RAW)
    det.update(flat(100))
    r = det.update(flat(100, (12, 16)))
    assert r.analysis is None and not r.motion
