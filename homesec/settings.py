"""Settings of the shared core (MQTT connection, logging). Each node package owns its section and registers
it through `homesec.plugins`."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# Sizes in the configuration (`*_mb`) are binary megabytes, as mosquitto's and the kernel's: one MB is
# 1024 * 1024 bytes everywhere (uploads, archive, spools, payloads, outbox).
MB = 1024 * 1024


def mb_to_bytes(mb: float) -> int:
    return int(mb * MB)


def topic_prefix(value: str, key: str, example: str) -> str:
    """A topic prefix that other topics are built under: no wildcards, no '$', no empty level."""
    if not value or any(c in value for c in "+#$ ") or value.startswith("/") or value.endswith("/"):
        raise ValueError(f"{key} must be a plain topic path like {example!r} (no wildcards, '$', spaces)")
    return value


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, so typos fail at start-up."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TlsSettings(Section):
    enabled: bool = Field(False, description="Connect with TLS (use the broker's 8883 listener).")
    ca_file: Path | None = Field(None, description="CA certificate that signed the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate, for mutual TLS.")
    key_file: Path | None = Field(None, description="Client key, for mutual TLS.")
    insecure: bool = Field(False, description="Skip host name verification (testing only).")

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSettings(Section):
    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    prefix: str = Field("homesec", description="First level of every topic.")
    username: str | None = Field(
        None,
        description="MQTT user; default: the node's own (camera-<id>, recognizer-<instance>, notifier-main) "
        "or admin for the command line.",
    )
    password: SecretStr | None = Field(
        None, description="Never in the file: HOMESEC_MQTT_PASSWORD or password_file."
    )
    password_file: Path | None = Field(
        None, description="File holding the password; default <data_dir>/secrets/mqtt-<username>.password."
    )
    share_group: SecretStr | None = Field(
        None,
        description="Recognizers only, never in the file: HOMESEC_MQTT_SHARE_GROUP or "
        "<data_dir>/secrets/recognizer-group (the shared-subscription group `homesec broker init` made).",
    )
    keepalive_s: int = Field(
        30, ge=5, le=3600, description="MQTT keepalive; the last will fires after ~1.5x."
    )
    session_expiry_s: int = Field(
        7 * 24 * 3600,
        ge=0,
        description="How long the broker keeps a node's queued messages while it is away.",
    )
    reconnect_min_s: int = Field(1, ge=1, description="First reconnect delay (doubles up to the max).")
    reconnect_max_s: int = Field(30, ge=1, description="Longest reconnect delay.")
    max_payload_mb: float = Field(
        15.0,
        gt=0,
        description="Larger publishes are refused before they reach the broker (its max_packet_size is 16 MB, "
        "and it drops a client that sends more).",
    )
    tls: TlsSettings = Field(default_factory=TlsSettings)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return topic_prefix(v, "prefix", "homesec")


class LogSettings(Section):
    level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    json_format: bool = Field(False, description="One JSON object per log line (for log shippers).")

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return v
