"""Image decoding with Pillow: EXIF orientation, odd modes, bounded memory, clear refusals for bad input.

A JPEG at least twice the detection size is decoded reduced (libjpeg's DCT scaling via `draft()`) for
detection, which costs a fraction of a full decode; the full-resolution pixels are needed only where a
face is cropped, and `DecodedImage.decode_on` decodes them on another thread meanwhile.

Memory is bounded by what decoding costs, not only by the pixel count: a 40 Mpx RGB PNG is 120 MB of
pixels before any conversion, and an RGBA or palette one several times that. So an image whose decode
would take more than `MAX_DECODE_BYTES` is refused from its header, unless it is a JPEG: those are
decoded at 1/2, 1/4 or 1/8 of their size (still far above what detection and the 112 px aligned faces
need), and every coordinate stays in the original image's pixels (`DecodedImage.scale`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import math
import warnings
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from homesec.contract import ContractError

ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
_DRAFTABLE = frozenset({"JPEG", "MPO"})
# The pixels one decode may hold (measured, docs/reliability.md: about 1.5x this above idle at peak).
MAX_DECODE_BYTES = 48 * 1024 * 1024
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees
_EXIF_ORIENTATION = 0x0112


class ImageError(ContractError):
    """The bytes are not an image we accept (empty, corrupt, not an image, too large)."""


def _give_back_large_buffers() -> None:
    """Have glibc map every buffer of 4 MB and more on its own, so freeing it returns it to the system.

    By default glibc raises that threshold after the first large free (up to 32 MB), and the pixels of
    the next big images then stay in the heap after use: after the bad-image set of bench/memory.py,
    41 MB stayed resident without this, 8 MB with it.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, 4 * 1024 * 1024)  # M_MMAP_THRESHOLD (fixing it stops the adjustment)
    except OSError:  # not glibc: nothing to tune
        pass


_give_back_large_buffers()


def _open(data: bytes) -> Image.Image:
    """Image.open with every Pillow failure (many exception types on malformed files) as ImageError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError("not an image (no known image format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"image too large (decompression-bomb guard): {exc}") from None
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
        rgba = im if im.mode in ("RGBA", "LA") else im.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))  # in place: no RGBA copies
        return white
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return Image.fromarray(_grey8(im)).convert("RGB")
    return im.convert("RGB")


def _grey8(im: Image.Image, rows: int = 256) -> np.ndarray:
    """8-bit grey from 16/32-bit integer or float grey, a strip of rows at a time (no full-size copies
    beyond the 8-bit result; a float32 copy of a 40 Mpx image would be 160 MB)."""
    out = np.empty((im.height, im.width), np.uint8)
    wide = im.mode.startswith("I;16") or (im.mode == "I" and _largest(im) > 255)
    for top in range(0, im.height, rows):
        strip = np.asarray(im.crop((0, top, im.width, min(im.height, top + rows))))
        if wide:  # a 16-bit range: 65535 -> 255
            strip = np.clip(strip, 0, 65535) // 257
        out[top : top + rows] = np.clip(strip, 0, 255)
    return out


def _largest(im: Image.Image) -> float:
    """The largest value of a one-band image."""
    extrema = im.getextrema()  # (min, max) for one band
    top = extrema[1]
    return float(top) if isinstance(top, int | float) else 0.0


@dataclass
class DecodedImage:
    """An accepted image: size known from the header, pixels decoded on demand (and cached).

    Pixels stay in Pillow until a region is asked for: converting a whole 1080p frame to numpy costs
    as much as a third of its decode, and only the detection copy and the face regions are needed.
    A JPEG too large to decode within `MAX_DECODE_BYTES` is held at a reduced `scale`; `width`,
    `height` and every box stay in the original pixels either way.
    """

    data: bytes
    format: str
    width: int  # after EXIF orientation
    height: int
    swapped: bool  # EXIF orientation turns the stored image by 90 degrees
    reduction: int = 1  # the JPEG is decoded at 1/reduction of its size (DCT scaling)
    _image: Image.Image | None = field(default=None, repr=False)
    _full: np.ndarray | None = field(default=None, repr=False)
    _pending: Future[Image.Image] | None = field(default=None, repr=False)

    @property
    def decoded(self) -> bool:
        """Whether the pixels have been decoded."""
        return self._image is not None

    @property
    def scale(self) -> float:
        """Pixels of `image()` per pixel of the original: 1, or 1/2, 1/4, 1/8 for a huge JPEG."""
        if self._image is None and self._pending is None:
            return 1 / self.reduction
        return self.image().width / self.width

    def image(self) -> Image.Image:
        """EXIF-oriented, RGB (Pillow), at `scale` of the original (full resolution unless huge)."""
        if self._image is None:
            # a decode started by `decode_on` is waited for (its ImageError raised here)
            self._image = self._pending.result() if self._pending is not None else self._decode()
        return self._image

    def decode_on(self, pool: Executor) -> None:
        """Start decoding the full-resolution pixels on `pool` (Pillow's decoder leaves the GIL), so
        they are ready when `image()` asks, while this thread detects on a reduced copy."""
        if self._image is None and self._pending is None:
            self._pending = pool.submit(self._decode)

    def _decode(self) -> Image.Image:
        im = _open(self.data)
        if self.reduction > 1:
            im.draft("RGB", _stored(self, self.width // self.reduction, self.height // self.reduction))
        return _load(im)

    def full(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB of `image()`."""
        if self._full is None:
            self._full = np.asarray(self.image())
        return self._full

    def region(
        self, box: tuple[int, int, int, int], width: int | None = None, height: int | None = None
    ) -> np.ndarray:
        """The pixels inside box (x1, y1, x2, y2, original pixels), resized to (width, height) if given
        (else at the box's own size)."""
        size = (width or box[2] - box[0], height or box[3] - box[1])
        image, k = self.image(), self.scale
        if k == 1 and size == (box[2] - box[0], box[3] - box[1]):
            return np.asarray(image.crop(box))
        source = (box[0] * k, box[1] * k, box[2] * k, box[3] * k)
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR, box=source, reducing_gap=1.0))

    def reduced(self, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB. A JPEG at least 2x larger is decoded reduced (`draft`)."""
        if self.draftable(width):
            im = _open(self.data)
            im.draft("RGB", _stored(self, width, height))  # DCT scaling, never below the requested size
            return resize_rgb(np.asarray(_load(im)), width, height)
        return self.region((0, 0, self.width, self.height), width, height)

    def draftable(self, width: int) -> bool:
        """Whether `reduced(width, ...)` decodes the JPEG anew at a reduced size (1/2 to 1/8): cheaper
        than reducing its full pixels, and those are needed only where a face is."""
        return self._image is None and self.format in _DRAFTABLE and width * 2 <= self.width


def _stored(image: DecodedImage, width: int, height: int) -> tuple[int, int]:
    """An oriented (width, height) in the file's own orientation."""
    return (height, width) if image.swapped else (width, height)


def decode_cost(im: Image.Image, reduction: int = 1) -> int:
    """Bytes a decode of `im` (at 1/reduction of its size) holds at once on the way to 8-bit RGB.

    The pixels as stored, plus what `to_rgb` makes from them: the RGB copy; for 16/32-bit grey the
    8-bit grey first; for transparency the white background, an RGBA copy and the alpha band.
    """
    pixels = math.ceil(im.width / reduction) * math.ceil(im.height / reduction)
    stored = _MODE_BYTES.get(im.mode, 4)
    if im.mode == "RGB":
        return pixels * stored
    if im.mode.startswith("I") or im.mode == "F":
        return pixels * (stored + 1 + 3)  # + the 8-bit grey, its RGB copy
    if not ("A" in im.mode or (im.mode == "P" and "transparency" in im.info)):
        return pixels * (stored + 3)
    rgba_copy = 0 if im.mode in ("RGBA", "LA") else 4
    return pixels * (stored + rgba_copy + 3 + 3 + 1)  # + white background, RGB copy, alpha band


_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "LA": 2, "PA": 2, "RGB": 3}


def _reduction(im: Image.Image, max_bytes: int) -> int:
    """1, or the DCT scaling (2, 4, 8) that decodes a huge JPEG within `max_bytes`; ImageError if none."""
    for reduction in (1, 2, 4, 8) if im.format in _DRAFTABLE else (1,):
        if decode_cost(im, reduction) <= max_bytes:
            return reduction
    w, h = im.size
    raise ImageError(
        f"image too large to decode: {w}x{h} {im.format} ({im.mode}) needs "
        f"{decode_cost(im) / 2**20:.0f} MB, the limit is {max_bytes / 2**20:.0f} MB; "
        "send it as a JPEG, or smaller"
    )


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize; shrinking first box-reduces by the integer factor (fast, and antialiased)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    im = Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR, reducing_gap=1.0)
    return np.asarray(im)


def open_image(data: bytes, max_pixels: int = 40_000_000, max_bytes: int = MAX_DECODE_BYTES) -> DecodedImage:
    """Check the header (format, size, decode cost) without decoding pixels; ImageError when refused."""
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
    reduction = _reduction(im, max_bytes)
    try:
        orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block is not worth refusing the photo for
        orientation = 1
    swapped = orientation in _SWAPPING_ORIENTATIONS
    width, height = (h, w) if swapped else (w, h)
    return DecodedImage(data, str(im.format), width, height, swapped, reduction)


def decode_rgb(data: bytes, max_pixels: int = 40_000_000) -> np.ndarray:
    """RGB pixels of an accepted image (reduced only when too large to decode whole: see `scale`)."""
    return open_image(data, max_pixels).full()


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def encode_png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG", optimize=False)
    return out.getvalue()
