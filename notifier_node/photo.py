"""Photos in and out of the chat: which photo a message means, and making a photo acceptable to
sendPhoto (at most 10 MB, width + height at most 10000)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from homesec.contract import ContractError

from .store import AlertStore
from .telegram import BotApi

MAX_DIM_SUM = 10_000
# Telegram shows a photo at most 2560 pixels on its longer side: a photo that has to be re-encoded anyway
# is brought down to that (which keeps a face's detail for training and search, too).
SHOWN_SIDE = 2560
# Decoding costs 4 bytes a pixel (Pillow keeps RGB in 32 bits), so 16 Mpx is 64 MB at the peak. JPEGs
# are decoded at a reduced scale first and only that reduced size counts.
MAX_DECODE_PIXELS = 16_000_000
_QUALITIES = (85, 75, 65)


class PhotoError(ContractError):
    """A photo that cannot be read, or not within the memory bound."""


class PhotoTooLarge(PhotoError):
    """A photo too large to decode within the memory bound, or to shrink under the byte limit."""


@dataclass(frozen=True)
class ChatPhoto:
    jpeg: bytes
    from_alert: bool  # the original alert JPEG kept on disk, not a photo someone sent


def largest_photo(message: dict[str, Any]) -> str | None:
    """The file_id of the largest size of the message's photo; None when it has none."""
    sizes = [p for p in message.get("photo") or [] if isinstance(p, dict) and p.get("file_id")]
    if not sizes:
        return None
    best = max(sizes, key=lambda p: (p.get("width", 0) * p.get("height", 0), p.get("file_size", 0)))
    return str(best["file_id"])


def photo_of(api: BotApi, msg: dict[str, Any], alerts: AlertStore) -> ChatPhoto | None:
    """The photo `msg` is about: its own, else the alert it replies to (the original, not Telegram's
    recompressed copy), else the photo it replies to. Raises TelegramError when a download fails."""
    if (file_id := largest_photo(msg)) is not None:
        return ChatPhoto(api.download_file(file_id), from_alert=False)
    reply = msg.get("reply_to_message") or {}
    if not reply:
        return None
    key = alerts.key_for(msg["chat"]["id"], reply.get("message_id", -1))
    if key and (jpeg := alerts.jpeg(key)) is not None:
        return ChatPhoto(jpeg, from_alert=True)
    file_id = largest_photo(reply)
    return None if file_id is None else ChatPhoto(api.download_file(file_id), from_alert=False)


def check_jpeg(data: bytes) -> None:
    if not data.startswith(b"\xff\xd8"):
        raise ContractError(f"alert payload is not a JPEG ({len(data)} bytes, starts {data[:4]!r})")


def _encode(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _open(data: bytes) -> Image.Image:
    """The image, header read only; PhotoError when Pillow cannot read it (or calls it a bomb)."""
    try:
        return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise PhotoError(f"not a photo I can read ({len(data)} bytes): {exc}") from None


def _target(width: int, height: int, max_dim_sum: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_dim_sum / (width + height), max_side / max(width, height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def decode_within(data: bytes, max_dim_sum: int = MAX_DIM_SUM, max_side: int = SHOWN_SIDE) -> Image.Image:
    """An RGB image of `data`, scaled down to fit both bounds (by up to half again: scaling by whole
    factors is what keeps memory bounded). A JPEG is decoded at 1/2, 1/4 or 1/8 scale straight away
    (`draft`); anything else is decoded whole, so it is refused, with the reason, over MAX_DECODE_PIXELS."""
    with _open(data) as src:
        want_w, want_h = _target(src.width, src.height, max_dim_sum, max_side)
        if src.format == "JPEG" and (want_w, want_h) != src.size:
            src.draft("RGB", (max(1, want_w // 2), max(1, want_h // 2)))  # now at most (want_w, want_h)
        w, h = src.size
        if w * h > MAX_DECODE_PIXELS:
            raise PhotoTooLarge(
                f"photo of {w}x{h} pixels: over the {MAX_DECODE_PIXELS // 1_000_000} Mpx I decode "
                "(send a smaller photo, or a JPEG)"
            )
        factor = math.ceil(max(w / max_side, h / max_side, (w + h) / max_dim_sum))
        try:
            src.load()
            img = src.reduce(factor) if factor > 1 else src
            img = img.convert("RGB") if img.mode != "RGB" or img is src else img
        except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt past the header
            raise PhotoError(f"photo cannot be decoded: {exc}") from None
    if img.width + img.height > max_dim_sum or max(img.size) > max_side:  # a pixel of rounding
        img = img.resize(_target(img.width, img.height, max_dim_sum, max_side), Image.Resampling.LANCZOS)
    return img


def fit_photo(
    data: bytes,
    max_bytes: int = 10 * 1024 * 1024,
    max_dim_sum: int = MAX_DIM_SUM,
    max_side: int = SHOWN_SIDE,
) -> bytes:
    """`data` unchanged when Telegram accepts it, else a re-encoded JPEG (at most `max_side` pixels
    wide or high, smaller still if that is needed to fit `max_bytes`). Raises PhotoError."""
    if len(data) <= max_bytes and data.startswith(b"\xff\xd8"):
        with _open(data) as probe:  # reads the header only
            if probe.width + probe.height <= max_dim_sum:
                return data
    img = decode_within(data, max_dim_sum, max_side)
    while True:
        for quality in _QUALITIES:
            out = _encode(img, quality)
            if len(out) <= max_bytes:
                return out
        if img.width < 64 or img.height < 64:
            raise PhotoTooLarge(f"photo still {len(out)} bytes at {img.width}x{img.height}: over {max_bytes}")
        img = img.resize((int(img.width * 0.7), int(img.height * 0.7)), Image.Resampling.LANCZOS)
