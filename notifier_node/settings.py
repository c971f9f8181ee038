"""The `[notifier]` config section. Imports only pydantic and the stdlib, so the core loads it cheaply."""

from __future__ import annotations

from pathlib import Path
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from homesec.settings import Section

TELEGRAM_API = "https://api.telegram.org"


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
        description="Per camera: later photos within this time (or of the same event) are grouped.",
    )
    timezone: str | None = Field(
        None, description="IANA zone for captions, e.g. Europe/Paris; default: local."
    )
    spool_max_items: int = Field(500, ge=1, description="Alerts kept on disk while Telegram is unreachable.")
    spool_max_bytes: int = Field(200 * 1024 * 1024, ge=1, description="Disk bound of that spool.")
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
        30.0, gt=0, description="How long /train and /forget wait for the recognizer."
    )
    max_photo_bytes: int = Field(
        10 * 1024 * 1024, ge=10_000, description="Larger photos are recompressed (Telegram's limit is 10 MB)."
    )

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
    def alert_chats(self) -> list[int]:
        return list(self.allowed_chat_ids if self.alert_chat_ids is None else self.alert_chat_ids)
