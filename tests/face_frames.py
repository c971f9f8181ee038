"""A face that only the motion-box detection pass can find: a test photo shrunk into a wide frame.

The frame is 7680x1080, so the whole-frame pass sees it at 960/7680 = 1/8: a 48 px face becomes 6 px
there, below YuNet's smallest anchor (measured: no face under 8 px is found, none at 6-7 px). The motion
box around the pasted photo is seen at 2x (`roi_max_upscale`), where the face is about 96 px, and the
refinement then measures it at full resolution: about 48 px, large enough to be recognized, to get a
visitor id and to be searched for.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

from PIL import Image

from tests.conftest import FACES

WIDE = (7680, 1080)
# The face's width in each test photo (measured with the real detector).
FACE_WIDTH = {"obama_probe.jpg": 359, "obama_train.jpg": 247, "biden_train.jpg": 289, "stranger.png": 272}

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class FramedFace:
    jpeg: bytes
    size: tuple[int, int]  # of the frame
    box: Box  # the pasted photo, in frame pixels: the camera's motion box


def framed_face(
    photo: str, face_px: int, size: tuple[int, int], at: tuple[int, int], quality: int
) -> FramedFace:
    """`photo` scaled so its face is `face_px` wide, pasted at `at` in a dark grey frame of `size` (JPEG)."""
    src = Image.open(FACES / photo).convert("RGB")
    f = face_px / FACE_WIDTH[photo]
    small = src.resize((round(src.width * f), round(src.height * f)), Image.Resampling.LANCZOS)
    frame = Image.new("RGB", size, (60, 60, 55))
    x, y = at
    frame.paste(small, (x, y))
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=quality)
    return FramedFace(out.getvalue(), size, (x, y, x + small.width, y + small.height))


@cache
def small_face_frame(photo: str = "obama_probe.jpg", face_px: int = 48) -> FramedFace:
    """`photo` scaled so its face is `face_px` wide, pasted in a dark grey WIDE frame (JPEG, quality 85)."""
    return framed_face(photo, face_px, WIDE, (5120, 360), quality=85)


def snapshot_image(photo: str, framed: bool) -> tuple[bytes, tuple[int, int], Box | None]:
    """(JPEG, declared size, motion box) of a snapshot of `photo`: as it is, with no motion box and a
    declared size of 1x1 (so none is scaled), or `framed` by `small_face_frame` with its motion box."""
    if not framed:
        return (FACES / photo).read_bytes(), (1, 1), None
    frame = small_face_frame(photo)
    return frame.jpeg, frame.size, frame.box
