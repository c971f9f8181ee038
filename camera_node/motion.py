"""Frame-differencing motion detection on the lores luma plane, with the knobs Motion users know.

The maths are pure functions on small arrays; `MotionDetector` keeps the previous frame and judges each
frame (motion or not, where, a light switch?). When events start and end is not decided here: that is
`camera_node.events`, driven by the service. Differences are taken in int16: uint8 subtraction wraps
(3 - 5 = 254), which would turn sensor noise in dark areas into "motion".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from camera_node.settings import MotionSettings

Box = tuple[int, int, int, int]  # x1, y1, x2, y2; x2/y2 exclusive
Size = tuple[int, int]  # width, height
Luma = NDArray[np.uint8]
Mask = NDArray[np.bool_]

BOX_TRIM = 0.01  # ignore the outermost 1% of changed pixels on each side: stray noise pixels
BOX_PAD = 0.1  # grow the box by 10% of its size on each side when scaling it to full resolution


@dataclass(frozen=True)
class MotionParams:
    threshold: int = 25
    min_area: float = 0.005
    min_frames: int = 2
    light_switch: float = 0.5
    light_switch_frames: int = 5
    compensate: bool = True
    despeckle: bool = True

    @classmethod
    def from_settings(cls, s: MotionSettings) -> MotionParams:
        return cls(
            s.threshold,
            s.min_area,
            s.min_frames,
            s.light_switch,
            s.light_switch_frames,
            s.compensate_brightness,
            s.despeckle,
        )


@dataclass(frozen=True)
class FrameAnalysis:
    changed_px: int
    fraction: float  # of the unmasked pixels
    over_area: bool  # enough changed pixels to count as motion (and not a light switch)
    light_switch: bool
    box: Box | None  # lores pixels; only when over_area


# ------------------------------------------------------------------------------------- pure maths


def signed_diff(prev: Luma, cur: Luma) -> NDArray[np.int16]:
    """cur - prev per pixel, in int16 so that nothing wraps (in uint8, 3 - 5 = 254)."""
    diff = cur.astype(np.int16)
    diff -= prev.astype(np.int16)
    return diff


def global_shift(diff: NDArray[np.int16]) -> int:
    """The frame's typical change: the median of every 4th pixel each way (cheap, and anything
    smaller than half the frame cannot move it)."""
    return int(np.median(diff[::4, ::4]))


def changed_mask(diff: NDArray[np.int16], threshold: int, active: Mask | None = None) -> Mask:
    """Pixels whose luma changed by more than `threshold`, restricted to `active` (unmasked) pixels."""
    changed = np.abs(diff) > threshold
    if active is not None:
        changed &= active
    return changed


def despeckle(changed: Mask) -> Mask:
    """Keep a changed pixel only if its 2x2 block (it, right, below, diagonal) all changed: sensor
    noise is scattered single pixels, a moving thing is a blob."""
    out = np.zeros_like(changed)
    out[:-1, :-1] = changed[:-1, :-1] & changed[1:, :-1] & changed[:-1, 1:] & changed[1:, 1:]
    return out


def min_area_px(min_area: float, active_px: int) -> int:
    """`min_area` below 1 is a fraction of the active pixels, from 1 up a pixel count."""
    if min_area < 1:
        return max(1, math.ceil(min_area * active_px))
    return int(min_area)


def _span(counts: NDArray[np.intp], trim: float) -> tuple[int, int]:
    cum = np.cumsum(counts)
    total = int(cum[-1])
    lo = int(np.searchsorted(cum, total * trim, side="right"))
    hi = int(np.searchsorted(cum, total * (1 - trim), side="left")) + 1
    return lo, max(hi, lo + 1)


def bounding_box(changed: Mask, trim: float = BOX_TRIM) -> Box | None:
    """Box around the changed pixels, trimming `trim` of them on each side (isolated noise)."""
    cols = np.count_nonzero(changed, axis=0)
    if not cols.any():
        return None
    rows = np.count_nonzero(changed, axis=1)
    x1, x2 = _span(cols, trim)
    y1, y2 = _span(rows, trim)
    return x1, y1, x2, y2


def to_full_resolution(box: Box, src: Size, dst: Size, pad: float = BOX_PAD) -> Box:
    """Map a lores box to full-resolution pixels, padded and clipped to the frame."""
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    x1, y1, x2, y2 = box
    px, py = (x2 - x1) * pad, (y2 - y1) * pad
    return (
        max(0, math.floor((x1 - px) * sx)),
        max(0, math.floor((y1 - py) * sy)),
        min(dst[0], math.ceil((x2 + px) * sx)),
        min(dst[1], math.ceil((y2 + py) * sy)),
    )


def analyze(prev: Luma, cur: Luma, params: MotionParams, active: Mask | None = None) -> FrameAnalysis:
    """One frame against the previous one. The light-switch test looks at the raw change (most of
    the frame changed at once); motion at the change left after removing the global shift."""
    diff = signed_diff(prev, cur)
    active_px = max(1, int(np.count_nonzero(active))) if active is not None else cur.size
    changed = raw = changed_mask(diff, params.threshold, active)
    if params.compensate:
        diff -= np.int16(global_shift(diff))
        changed = changed_mask(diff, params.threshold, active)
    if params.despeckle:
        changed = despeckle(changed)
    n = int(np.count_nonzero(changed))
    fraction = n / active_px
    raw_fraction = int(np.count_nonzero(raw)) / active_px
    light = params.light_switch < 1 and max(raw_fraction, fraction) > params.light_switch
    over = not light and n >= min_area_px(params.min_area, active_px)
    return FrameAnalysis(n, fraction, over, light, bounding_box(changed) if over else None)


# ------------------------------------------------------------------------------------------ masks


def rect_mask(size: Size, rects: Sequence[tuple[float, float, float, float]]) -> Mask:
    """Ignore mask (True = ignored) from rectangles given as fractions of the frame."""
    w, h = size
    ignored = np.zeros((h, w), dtype=np.bool_)
    for x1, y1, x2, y2 in rects:
        ignored[math.floor(y1 * h) : math.ceil(y2 * h), math.floor(x1 * w) : math.ceil(x2 * w)] = True
    return ignored


def load_mask_png(path: Path, size: Size) -> Mask:
    """Ignore mask from an image: black (dark) pixels are ignored, as in Motion's mask_file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            grey = img.convert("L").resize(size, Image.Resampling.NEAREST)
    except FileNotFoundError:
        raise ValueError(f"camera.motion.mask_file: {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"camera.motion.mask_file: {path} is not a readable image: {exc}") from None
    return np.asarray(grey) < 128


def build_active(settings: MotionSettings, size: Size) -> Mask | None:
    """Pixels that take part in detection (None: all), from the ignore rectangles and the mask file."""
    ignored = rect_mask(size, settings.ignore)
    if settings.mask_file is not None:
        ignored |= load_mask_png(settings.mask_file, size)
    if not ignored.any():
        return None
    if ignored.all():
        raise ValueError("camera.motion: the ignore rectangles and mask_file ignore the whole frame")
    return ~ignored


# --------------------------------------------------------------------------------------- detector


@dataclass(frozen=True)
class DetectorResult:
    analysis: FrameAnalysis | None  # None for the first frame (nothing to compare with)
    motion: bool  # this frame counts as motion (after min_frames and light-switch suppression)
    box: Box | None  # lores pixels; only when `motion`


class MotionDetector:
    """Judges lores luma frames one after the other through `analyze`: keeps the previous frame, the
    streak of frames over the area (`min_frames`) and the frames ignored after a light switch."""

    def __init__(self, params: MotionParams, active: Mask | None = None) -> None:
        self.params = params
        self.active = active
        self._prev: Luma | None = None
        self._streak = 0
        self._quiet = 0  # frames still ignored after a light switch
        self.light_switches = 0

    def reset(self) -> None:
        self._prev, self._streak, self._quiet = None, 0, 0

    def update(self, luma: Luma) -> DetectorResult:
        prev, self._prev = self._prev, luma
        if prev is None or prev.shape != luma.shape:
            return DetectorResult(None, False, None)
        active = self.active if self.active is not None and self.active.shape == luma.shape else None
        a = analyze(prev, luma, self.params, active)
        if a.light_switch:
            self.light_switches += 1
            self._quiet = self.params.light_switch_frames
            self._streak = 0
        elif self._quiet > 0:
            self._quiet -= 1
            self._streak = 0
        else:
            self._streak = self._streak + 1 if a.over_area else 0
        motion = self._streak >= self.params.min_frames
        return DetectorResult(a, motion, a.box if motion else None)
