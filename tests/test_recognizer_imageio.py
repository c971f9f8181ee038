"""Image decoding: accepted formats and modes, EXIF orientation, reduced decoding, clear refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from homesec.contract import ContractError
from recognizer_node.imageio import ImageError, decode_rgb, open_image, to_rgb
from tests.conftest import FACES


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **kw)
    return out.getvalue()


def gradient(w: int = 64, h: int = 48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    return Image.fromarray(np.stack([x, x[::-1], np.full_like(x, 90)], axis=2))


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGB", "JPEG"), ("RGB", "PNG"), ("RGB", "WEBP"), ("L", "PNG"), ("L", "JPEG"), ("RGBA", "PNG"),
     ("CMYK", "JPEG"), ("P", "PNG"), ("I;16", "PNG"), ("LA", "PNG")],
)  # fmt: skip
def test_accepted_modes_and_formats_decode_to_rgb(mode: str, fmt: str) -> None:
    im = gradient().convert(mode) if mode != "I;16" else Image.fromarray(np.full((48, 64), 40000, np.uint16))
    rgb = decode_rgb(encode(im, fmt))
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert rgb.max() > 0


def test_transparent_png_is_composited_on_white() -> None:
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert decode_rgb(encode(im, "PNG")).min() == 255


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    im = Image.fromarray(np.array([[0, 32768, 65535]], np.uint16))
    assert np.asarray(to_rgb(im))[0, 1, 0] == pytest.approx(127, abs=1)


def test_exif_orientation_is_applied() -> None:
    im = gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img = open_image(encode(im, "JPEG", exif=exif.tobytes()))
    assert (img.width, img.height) == (48, 64)
    assert img.full().shape == (64, 48, 3)
    assert img.reduced(12, 16).shape == (16, 12, 3)


def test_large_jpeg_is_decoded_reduced_and_matches_the_full_decode() -> None:
    im = gradient(1600, 1200)
    img = open_image(encode(im, "JPEG", quality=95))
    small = img.reduced(400, 300)  # 4x smaller: libjpeg DCT scaling (draft), full pixels not decoded
    assert small.shape == (300, 400, 3)
    assert img._full is None
    reference = np.asarray(Image.fromarray(img.full()).resize((400, 300), Image.Resampling.BILINEAR))
    assert np.abs(small.astype(int) - reference.astype(int)).mean() < 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty image"),
        (b"hello, this is not a picture", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),
    ],
)
def test_refused_inputs(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        open_image(data).full()


def test_truncated_jpeg_is_refused_clearly() -> None:
    data = (FACES / "obama_probe.jpg").read_bytes()
    with pytest.raises(ImageError, match="corrupt or truncated"):
        open_image(data[: len(data) // 2]).full()


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # a 6000x6000 PNG of zeros compresses to ~100 KB; refused from its header
    bomb = encode(Image.new("L", (6000, 6000)), "PNG")
    with pytest.raises(ImageError, match="too large"):
        open_image(bomb, max_pixels=20_000_000)


def test_image_error_is_a_contract_error() -> None:
    assert issubclass(ImageError, ContractError)


def test_unsupported_format_is_refused() -> None:
    with pytest.raises(ImageError, match="unsupported image format"):
        open_image(encode(gradient(), "ICO"))
