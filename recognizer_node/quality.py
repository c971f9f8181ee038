"""Face quality: size, detection score and sharpness, each gate with a readable reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SHARPNESS_REF = 10.0  # crisp aligned faces measure 15-70; camera frames of 40-80 px faces 2-35
TOO_SMALL = "face too small"  # how a size refusal starts: someone is there, but too far to judge


def face_px(box: tuple[float, float, float, float] | np.ndarray) -> int:
    """A face's size: its box's shorter side (the width, for an upright face)."""
    return round(min(float(box[2]) - float(box[0]), float(box[3]) - float(box[1])))


class HasBox(Protocol):
    @property
    def box(self) -> tuple[int, int, int, int]: ...


F = TypeVar("F", bound=HasBox)


def largest_face(faces: Sequence[F]) -> F:
    """The face with the largest box (by area; the first of equals). `faces` must not be empty."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def sharpness(aligned: np.ndarray) -> float:
    """100 x variance of the 4-neighbour Laplacian / variance of the grey levels, over the face's centre.

    Dividing by the contrast makes it independent of exposure (a dark frame scales both alike).
    Measured (docs/accuracy.md): crisp photos 4-74 (median 28), dark noisy 40-80 px camera faces >= 2,
    Gaussian blur of 4 px on a 100 px face <= 0.65.
    """
    centre = aligned[16:96, 16:96].astype(np.float32)  # the border is background
    gray = centre @ _LUMA if centre.ndim == 3 else centre
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * gray[1:-1, 1:-1]
    return float(100.0 * lap.var() / (gray.var() + 1.0))


def brightness(aligned: np.ndarray) -> float:
    """Mean grey level (0-255) of the aligned face's centre: low in a dark frame, where noise and JPEG
    blocks swamp what little detail a small face has."""
    centre = aligned[16:96, 16:96].astype(np.float32)
    return float((centre @ _LUMA if centre.ndim == 3 else centre).mean())


def quality_score(px: int, score: float, sharp: float) -> float:
    """One number in 0..1 for ranking faces: detection score scaled down for small or soft faces."""
    return round(score * min(1.0, px / 112) ** 0.5 * min(1.0, sharp / SHARPNESS_REF) ** 0.5, 4)


def is_too_small(reason: str | None) -> bool:
    """Whether a gate's refusal was for size (as opposed to blur or a weak detection)."""
    return reason is not None and reason.startswith(TOO_SMALL)


@dataclass(frozen=True)
class Gates:
    min_face_px: int
    min_det_score: float
    min_sharpness: float
    # In a dim face (mean grey level below dim_brightness) a small face is judged wrongly too often
    # (docs/accuracy.md: 30 px faces, dark: 18 % of genuine frames unnamed; clean: none): ask for more.
    dim_min_face_px: int = 0
    dim_brightness: float = 0.0

    def min_px(self, bright: float | None) -> int:
        dim = bright is not None and bright < self.dim_brightness
        return max(self.min_face_px, self.dim_min_face_px) if dim else self.min_face_px

    def reject_reason(
        self, px: int, score: float, sharp: float | None, bright: float | None = None
    ) -> str | None:
        """Why a face is not usable, or None."""
        if px < (need := self.min_px(bright)):
            light = " in this light" if need > self.min_face_px else ""
            return f"{TOO_SMALL} ({px} px < {need} px{light})"
        if score < self.min_det_score:
            return f"low detection score ({score:.2f} < {self.min_det_score:.2f})"
        if sharp is not None and sharp < self.min_sharpness:
            return f"face too blurred (sharpness {sharp:.1f} < {self.min_sharpness:.1f})"
        return None
