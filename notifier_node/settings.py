"""The `[notifier]` config section and its `[notifier.spool]` and `[notifier.outbox]` sub-tables. Imports
only pydantic, the stdlib and the core's `Section`, so the core loads it cheaply."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from homesec.settings import MB, Section

log = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"


def _deprecated(old: str, new: str) -> None:
    env = "HOMESEC_NOTIFIER__" + new.upper().replace(".", "__")
    log.warning("notifier.%s is deprecated and will go: use notifier.%s (or %s)", old, new, env)


class SpoolSettings(Section):
    max_items: int = Field(500, ge=1, description="Alerts kept on disk while Telegram is unreachable.")
    max_mb: float = Field(200.0, gt=0, description="Disk bound of that spool, in MB; the oldest go first.")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * MB)


class OutboxSettings(Section):
    """`[notifier.outbox]`: how much of the outbox (alerts written to disk without a Telegram token) is kept."""

    max_days: float = Field(30.0, gt=0, description="Alerts in the outbox older than this are deleted.")
    max_mb: float = Field(
        500.0,
        gt=0,
        description="Disk budget of the outbox, in MB: once over it, the oldest alerts go until 90% of it is left.",
    )

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * MB)

    @property
    def max_age_s(self) -> float:
        return self.max_days * 86400


class NotifierSettings(Section):
    base_url: str = Field(
        TELEGRAM_API, description="Telegram Bot API base URL (a local Bot API server or a test stand-in)."
    )
    token: SecretStr | None = Field(
        None,
        description="Bot token. Never in the file: the loader fills it from HOMESEC_TELEGRAM_TOKEN "
        "(or HOMESEC_TELEGRAM_TOKEN_FILE). No token at all: alerts go to <data_dir>/outbox/.",
    )
    token_file: Path | None = Field(
        None, description="File holding the bot token (read when `token` is unset)."
    )
    allowed_chat_ids: list[int] = Field(
        default_factory=list, description="Chats whose commands the bot obeys; everyone else is refused."
    )
    alert_chat_ids: list[int] | None = Field(
        None, description="Chats that receive alerts; default: every allowed chat."
    )
    default_armed: bool = Field(True, description="Armed state before anyone arms or disarms.")
    alert_on_no_face: bool = Field(True, description="Alert when motion was seen but no usable face.")
    cooldown_s: float = Field(
        60.0,
        ge=0,
        description="Per camera and visitor: later photos of the same visitor (or of the same event) within this time are grouped; a different stranger is news.",
    )
    timezone: str | None = Field(
        None, description="IANA zone for captions, e.g. Europe/Paris; default: local."
    )
    alerts_kept: int = Field(
        200, ge=1, description="Recent alert photos kept for 'Enroll' and reply-to-train."
    )
    poll_timeout_s: int = Field(30, ge=0, le=50, description="getUpdates long-poll time.")
    connect_timeout_s: float = Field(5.0, gt=0, description="HTTP connect timeout.")
    request_timeout_s: float = Field(20.0, gt=0, description="HTTP read timeout (added to the long poll).")
    retry_min_s: float = Field(1.0, gt=0, description="First retry delay after a failed send (doubles).")
    retry_max_s: float = Field(300.0, gt=0, description="Longest retry delay.")
    chat_interval_s: float = Field(1.0, ge=0, description="Minimum gap between two messages to one chat.")
    reply_timeout_s: float = Field(
        30.0, gt=0, description="How long /train, /forget and /search wait for the recognizer."
    )
    max_photo_bytes: int = Field(
        10 * MB, ge=10_000, description="Larger photos are recompressed (Telegram's limit is 10 MB)."
    )
    request_photo_mb: float = Field(
        4.0,
        ge=0.05,
        description="Photos for /train, /search and /not larger than this are re-encoded smaller before they "
        "go to the recognizer (base64 adds a third on the bus, which carries at most mqtt.max_payload_mb).",
    )
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

    @model_validator(mode="before")
    @classmethod
    def _old_spool_keys(cls, data: Any) -> Any:
        """Accept the flat `spool_max_items` / `spool_max_bytes` that `[notifier.spool]` replaced."""
        if not isinstance(data, dict) or not {"spool_max_items", "spool_max_bytes"} & data.keys():
            return data
        data = dict(data)
        spool = dict(data.get("spool") or {})
        if "spool_max_items" in data:
            _deprecated("spool_max_items", "spool.max_items")
            spool.setdefault("max_items", data.pop("spool_max_items"))
        if "spool_max_bytes" in data:
            _deprecated("spool_max_bytes", "spool.max_mb")
            spool.setdefault("max_mb", float(data.pop("spool_max_bytes")) / MB)
        data["spool"] = spool
        return data

    @field_validator("allowed_chat_ids", "alert_chat_ids", mode="before")
    @classmethod
    def _id_list(cls, v: object) -> object:
        """Environment overrides arrive as text: accept "123,-100456" and "[123, -100456]"."""
        if isinstance(v, str):
            return [int(part) for part in v.strip().strip("[]").replace(" ", "").split(",") if part]
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r} (use an IANA name like Europe/Paris)") from None
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _retry(self) -> Self:
        if self.retry_min_s > self.retry_max_s:
            raise ValueError("retry_min_s must not exceed retry_max_s")
        return self

    @property
    def request_photo_bytes(self) -> int:
        return int(self.request_photo_mb * MB)

    @property
    def alert_chats(self) -> list[int]:
        return list(self.allowed_chat_ids if self.alert_chat_ids is None else self.alert_chat_ids)
