"""Face quality: size, detection score and sharpness, each gate with a readable reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SHARPNESS_REF = 10.0  # crisp aligned faces measure 15-70; camera frames of 40-80 px faces 2-35


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


def quality_score(px: int, score: float, sharp: float) -> float:
    """One number in 0..1 for ranking faces: detection score scaled down for small or soft faces."""
    return round(score * min(1.0, px / 112) ** 0.5 * min(1.0, sharp / SHARPNESS_REF) ** 0.5, 4)


@dataclass(frozen=True)
class Gates:
    min_face_px: int
    min_det_score: float
    min_sharpness: float

    def reject_reason(self, px: int, score: float, sharp: float | None) -> str | None:
        """Why a face is not usable, or None."""
        if px < self.min_face_px:
            return f"face too small ({px} px < {self.min_face_px} px)"
        if score < self.min_det_score:
            return f"low detection score ({score:.2f} < {self.min_det_score:.2f})"
        if sharp is not None and sharp < self.min_sharpness:
            return f"face too blurred (sharpness {sharp:.1f} < {self.min_sharpness:.1f})"
        return None
