"""Make a photo acceptable to sendPhoto: at most 10 MB and width + height at most 10000."""

from __future__ import annotations

import io

from PIL import Image

from homesec.contract import ContractError

MAX_DIM_SUM = 10_000
_QUALITIES = (85, 75, 65)


def check_jpeg(data: bytes) -> None:
    if not data.startswith(b"\xff\xd8"):
        raise ContractError(f"alert payload is not a JPEG ({len(data)} bytes, starts {data[:4]!r})")


def _encode(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def fit_photo(data: bytes, max_bytes: int = 10 * 1024 * 1024, max_dim_sum: int = MAX_DIM_SUM) -> bytes:
    """`data` unchanged when Telegram accepts it, else a re-encoded (and if need be smaller) JPEG."""
    if len(data) <= max_bytes and data.startswith(b"\xff\xd8"):
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only
            if probe.width + probe.height <= max_dim_sum:
                return data
    with Image.open(io.BytesIO(data)) as src:
        img = src.convert("RGB")
    if img.width + img.height > max_dim_sum:
        scale = max_dim_sum / (img.width + img.height)
        img = img.resize(
            (max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.Resampling.LANCZOS
        )
    while True:
        for quality in _QUALITIES:
            out = _encode(img, quality)
            if len(out) <= max_bytes:
                return out
        if img.width < 64 or img.height < 64:
            return out  # cannot happen with a sane bound; better a big photo than none
        img = img.resize((int(img.width * 0.7), int(img.height * 0.7)), Image.Resampling.LANCZOS)
