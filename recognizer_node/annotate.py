"""Draw boxes and labels on a snapshot for alerts: green named, red unknown, grey not usable."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from recognizer_node.imageio import open_image

GREEN = (40, 200, 70)
RED = (230, 40, 40)
GREY = (160, 160, 160)


@dataclass(frozen=True)
class Mark:
    box: tuple[int, int, int, int]
    text: str
    color: tuple[int, int, int]


# Names are in any script (`José`, `Zoë`, `Łukasz`): Pillow's own font draws ASCII only, so a system font
# with Latin, Greek and Cyrillic first (Debian's and Raspberry Pi OS's fonts-dejavu-core), when there.
FONT_FILES = ("DejaVuSans.ttf", "NotoSans-Regular.ttf")


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in FONT_FILES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:  # not installed
            continue
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _glyph(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str) -> bytes:
    image = Image.new("L", (48, 48))
    ImageDraw.Draw(image).text((0, 0), char, font=font, fill=255)
    return image.tobytes()


def drawable(text: str) -> bool:
    """Every character of `text` has a glyph in the marks' font: else it would show as empty boxes."""
    font = _font(22)
    missing = _glyph(font, "\U0010fffd")  # a private-use character: the font's "no such glyph" box
    return all(_glyph(font, char) != missing for char in set(text) if not char.isspace())


def draw_marks(data: bytes, marks: list[Mark], quality: int = 85, max_pixels: int = 40_000_000) -> bytes:
    """The image (EXIF-oriented, as the boxes are) with the marks drawn, as JPEG."""
    decoded = open_image(data, max_pixels)
    image, k = decoded.image(), decoded.scale  # a huge JPEG is drawn reduced; boxes are in its full pixels
    draw = ImageDraw.Draw(image)
    scale = max(image.size) / 1000
    width = max(2, round(3 * scale))
    font = _font(max(12, round(22 * scale)))
    for mark in marks:
        x1, y1, x2, y2 = (round(v * k) for v in mark.box)
        draw.rectangle((x1, y1, x2, y2), outline=mark.color, width=width)
        if not mark.text:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), mark.text, font=font)
        tw, th = right - left, bottom - top
        pad = max(2, width)
        ty = y1 - th - 2 * pad if y1 - th - 2 * pad >= 0 else y2  # above the box, or below at the top edge
        draw.rectangle((x1, ty, x1 + tw + 2 * pad, ty + th + 2 * pad), fill=mark.color)
        draw.text((x1 + pad - left, ty + pad - top), mark.text, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def mark_for(
    label: str | None, similarity: float | None, rejected: str | None, box: tuple[int, int, int, int]
) -> Mark:
    if rejected is not None:
        return Mark(box, "", GREY)
    if label is not None:
        return Mark(box, f"{label} {similarity:.2f}" if similarity is not None else label, GREEN)
    return Mark(box, "unknown", RED)
