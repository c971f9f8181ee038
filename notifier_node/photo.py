"""Photos in and out of the chat: which photo a message means, and making a photo acceptable to
sendPhoto (at most 10 MB, width + height at most 10000)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image

from homesec.contract import ContractError

from .store import AlertStore
from .telegram import BotApi

MAX_DIM_SUM = 10_000
_QUALITIES = (85, 75, 65)


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
