"""Bounded memory: what a decode may hold is checked from the header; huge JPEGs are decoded reduced."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from recognizer_node.annotate import Mark, draw_marks
from recognizer_node.imageio import MAX_DECODE_BYTES, ImageError, open_image, to_rgb


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **kw)
    return out.getvalue()


def squares(w: int, h: int) -> Image.Image:
    """Grey with a white square every 1000 px, so positions can be checked after reduction."""
    arr = np.full((h, w, 3), 60, np.uint8)
    for y in range(0, h - 200, 1000):
        for x in range(0, w - 200, 1000):
            arr[y + 100 : y + 300, x + 100 : x + 300] = 255
    return Image.fromarray(arr)


def test_a_huge_jpeg_is_decoded_reduced_with_boxes_in_its_own_pixels() -> None:
    img = open_image(encode(squares(6000, 4000), "JPEG", quality=90))
    assert (img.width, img.height) == (6000, 4000)
    assert img.image().size == (3000, 2000) and img.scale == 0.5  # 72 MB whole, 18 MB at 1/2
    square = img.region((2100, 1100, 2300, 1300))  # original pixels: the square at (2, 1)
    assert square.shape == (200, 200, 3) and square.mean() > 240
    assert img.region((2400, 1100, 2600, 1300), 50, 50).mean() < 80  # beside it: grey


def test_an_image_too_costly_to_decode_is_refused_from_its_header() -> None:
    big_png = encode(Image.new("RGB", (6320, 6320), (90, 90, 90)), "PNG")  # the report's 117 KB PNG
    with pytest.raises(ImageError, match=r"too large to decode: 6320x6320 PNG \(RGB\) needs 114 MB"):
        open_image(big_png)
    rgba = encode(Image.new("RGBA", (2400, 2400)), "PNG")  # 23 MB stored, ~80 MB to composite on white
    with pytest.raises(ImageError, match="too large to decode"):
        open_image(rgba)
    assert open_image(big_png, max_bytes=200 * 2**20).width == 6320  # the limit is the budget, not the size


@pytest.mark.parametrize(
    ("mode", "size"),
    [("RGB", (4000, 4000)), ("RGBA", (2560, 1440)), ("L", (4000, 3000)), ("I;16", (3000, 2500))],
)
def test_common_large_images_pass_the_decode_budget(mode: str, size: tuple[int, int]) -> None:
    im = Image.new(mode, size)
    data = encode(im, "PNG", compress_level=1)
    assert open_image(data).reduction == 1  # decoded whole: the figures docs/reliability.md gives


def test_sixteen_bit_grey_is_converted_without_float_copies() -> None:
    im = Image.fromarray((np.arange(2000 * 2000) % 65536).astype(np.uint16).reshape(2000, 2000))
    tracemalloc.start()
    rgb = to_rgb(im)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rgb.mode == "RGB" and np.asarray(rgb)[0, 257 * 4, 0] == 4
    assert peak < 2000 * 2000 * 3  # a float32 copy alone would be 16 MB


def test_marks_on_a_reduced_jpeg_land_where_the_boxes_say() -> None:
    jpeg = encode(Image.new("RGB", (6000, 4000), (60, 60, 60)), "JPEG")
    out = Image.open(io.BytesIO(draw_marks(jpeg, [Mark((1000, 1000, 2000, 2000), "", (255, 0, 0))])))
    assert out.size == (3000, 2000)
    pixels = np.asarray(out)
    assert pixels[750, 500, 0] > 200 and pixels[750, 750, 0] < 100  # the box's edge red, inside not


PEAK_SCRIPT = textwrap.dedent(
    """
    import io, sys
    from pathlib import Path
    from PIL import Image
    from recognizer_node.annotate import Mark, draw_marks
    from recognizer_node.imageio import open_image

    def status(field):
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
        return int(line.split()[1]) / 1024

    def save(im, fmt):
        out = io.BytesIO()
        im.save(out, format=fmt, compress_level=1) if fmt == "PNG" else im.save(out, format=fmt)
        return out.getvalue()

    images = [save(Image.new("RGB", (6320, 6320), (90, 90, 90)), "JPEG"),
              save(Image.new("RGB", (4000, 4000), (90, 90, 90)), "PNG")]
    idle, peak = status("VmRSS"), 0.0
    for data in images:  # as the recognizer meets them: analysis first, then the alert image
        Path("/proc/self/clear_refs").write_text("5")
        img = open_image(data)
        img.reduced(960, 960)
        img.region((100, 100, 400, 400), 112, 112)
        del img
        draw_marks(data, [Mark((100, 100, 400, 400), "x", (255, 0, 0))])
        peak = max(peak, status("VmHWM") - idle)
    print(peak, status("VmRSS") - idle)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_of_decoding_huge_images_stays_bounded() -> None:
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=True)
    peak, after = (float(v) for v in out.stdout.split())
    assert peak < 100 and MAX_DECODE_BYTES < 100 * 2**20
    assert after < 30  # and given back
