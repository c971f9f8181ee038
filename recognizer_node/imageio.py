"""Image decoding with Pillow: EXIF orientation, odd modes, and clear refusals for bad input.

A large JPEG is decoded reduced (libjpeg's DCT scaling via `draft()`) for detection, which costs a
fraction of a full decode; the full-resolution pixels are decoded only when a face needs cropping.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from homesec.contract import ContractError

ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees
_EXIF_ORIENTATION = 0x0112


class ImageError(ContractError):
    """The bytes are not an image we accept (empty, corrupt, not an image, too large)."""


def _open(data: bytes) -> Image.Image:
    """Image.open with every Pillow failure (many exception types on malformed files) as ImageError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError("not an image (no known image format)") from None
        except Exception as exc:
            raise ImageError(f"not an image we can read ({type(exc).__name__}: {exc})") from None


def _load(im: Image.Image) -> Image.Image:
    """Decode pixels, apply EXIF orientation, convert to 8-bit RGB."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im.load()
            if im.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None):
                im = ImageOps.exif_transpose(im)  # (it copies even when there is nothing to turn)
            return to_rgb(im)
        except Exception as exc:
            raise ImageError(f"corrupt or truncated image ({type(exc).__name__}: {exc})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: alpha over white, 16-bit grey scaled down, CMYK/P/L converted."""
    if im.mode == "RGB":
        return im
    if "A" in im.mode or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        if im.mode != "F":
            arr = arr / 257.0 if im.mode.startswith("I;16") or arr.max() > 255 else arr
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


@dataclass
class DecodedImage:
    """An accepted image: size known from the header, pixels decoded on demand (and cached).

    Pixels stay in Pillow until a region is asked for: converting a whole 1080p frame to numpy costs
    as much as a third of its decode, and only the detection copy and the face regions are needed.
    """

    data: bytes
    format: str
    width: int  # after EXIF orientation
    height: int
    swapped: bool  # EXIF orientation turns the stored image by 90 degrees
    _image: Image.Image | None = field(default=None, repr=False)
    _full: np.ndarray | None = field(default=None, repr=False)

    @property
    def decoded(self) -> bool:
        """Whether the full-resolution pixels have been decoded."""
        return self._image is not None

    def image(self) -> Image.Image:
        """Full resolution, EXIF-oriented, RGB (Pillow)."""
        if self._image is None:
            self._image = _load(_open(self.data))
        return self._image

    def full(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB at full resolution."""
        if self._full is None:
            self._full = np.asarray(self.image())
        return self._full

    def region(
        self, box: tuple[int, int, int, int], width: int | None = None, height: int | None = None
    ) -> np.ndarray:
        """Full-resolution pixels inside box (x1, y1, x2, y2), resized to (width, height) if given."""
        size = (width or box[2] - box[0], height or box[3] - box[1])
        if size == (box[2] - box[0], box[3] - box[1]):
            return np.asarray(self.image().crop(box))
        return np.asarray(self.image().resize(size, Image.Resampling.BILINEAR, box=box, reducing_gap=1.0))

    def reduced(self, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB. A JPEG at least 3x larger is decoded reduced (`draft`)."""
        if self._image is None and self.format in ("JPEG", "MPO") and width * 3 <= self.width:
            im = _open(self.data)
            stored = (height, width) if self.swapped else (width, height)
            im.draft("RGB", stored)  # DCT scaling by 1/2, 1/4 or 1/8, never below the requested size
            return resize_rgb(np.asarray(_load(im)), width, height)
        # smaller reductions: the full decode is needed anyway when a face is found
        return self.region((0, 0, self.width, self.height), width, height)


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize; shrinking first box-reduces by the integer factor (fast, and antialiased)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    im = Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR, reducing_gap=1.0)
    return np.asarray(im)


def open_image(data: bytes, max_pixels: int = 40_000_000) -> DecodedImage:
    """Check the header (format, size) without decoding pixels; raise ImageError when refused."""
    if not data:
        raise ImageError("empty image (0 bytes)")
    im = _open(data)
    if im.format not in ALLOWED_FORMATS:
        raise ImageError(f"unsupported image format {im.format}; send JPEG, PNG or WebP")
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError(f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(
            f"image too large: {w}x{h} = {w * h / 1e6:.0f} Mpx > {max_pixels / 1e6:.0f} Mpx limit "
            "(decompression-bomb guard)"
        )
    try:
        orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block is not worth refusing the photo for
        orientation = 1
    swapped = orientation in _SWAPPING_ORIENTATIONS
    width, height = (h, w) if swapped else (w, h)
    return DecodedImage(data, str(im.format), width, height, swapped)


def decode_rgb(data: bytes, max_pixels: int = 40_000_000) -> np.ndarray:
    """Full-resolution RGB pixels of an accepted image."""
    return open_image(data, max_pixels).full()


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def encode_png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG", optimize=False)
    return out.getvalue()
