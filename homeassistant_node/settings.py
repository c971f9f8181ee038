"""The `[homeassistant]` config section. Imports only pydantic and the core's `Section`, so the core loads
it cheaply."""

from __future__ import annotations

from pydantic import Field, field_validator

from homesec.settings import Section, topic_prefix


class HomeAssistantSettings(Section):
    enabled: bool = Field(
        True,
        description="Announce homesec to Home Assistant (MQTT discovery). Off: the bridge removes the "
        "entities it announced and publishes nothing else.",
    )
    discovery_prefix: str = Field(
        "homeassistant",
        description="Home Assistant's MQTT discovery prefix (its MQTT integration's setting); `homesec "
        "broker init` writes the homeassistant account's rules for it.",
    )
    photos: bool = Field(
        True,
        description="Home Assistant may show the photos: its account reads the snapshots and alerts "
        "(the Last snapshot and Last alert image entities). Off: those two entities are not announced "
        "(and removed if they were) and the broker denies the account every photo; `homesec broker "
        "init` writes that rule (run it again after a change; `homesec up` does on each start).",
    )
    device_name: str = Field(
        "homesec", min_length=1, max_length=64, description="Name of the system device in Home Assistant."
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return topic_prefix(v, "discovery_prefix", "homeassistant")
