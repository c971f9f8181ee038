"""The `[recognizer.http]` config section. Imports only pydantic (the config loads it for every command)."""

from __future__ import annotations

from pydantic import Field

from homesec.settings import Section, mb_to_bytes


class HttpSettings(Section):
    """`[recognizer.http]`: the HTTP API (docs/http.md)."""

    enabled: bool = Field(True, description="Serve the HTTP API beside MQTT.")
    host: str = Field(
        "127.0.0.1",
        description="Address to listen on: 0.0.0.0 opens the API to the LAN (use the tokens; see docs/http.md).",
    )
    port: int = Field(8470, ge=0, le=65535, description="TCP port (0: any free port).")
    max_upload_mb: float = Field(
        10.0, gt=0, description="Larger uploads are refused with 413 (pixels: recognizer.max_image_pixels)."
    )
    rate_per_minute: int = Field(
        600, ge=1, description="Requests a token may make per minute (bursts up to a tenth of it); then 429."
    )
    max_recognitions: int = Field(
        2,
        ge=1,
        le=64,
        description="Photo requests (train, match, search, not) served at once; more wait, then get 503 "
        "(the alerts keep their cores).",
    )
    recognition_wait_s: float = Field(
        5.0, ge=0, le=60, description="How long a photo request waits for its turn before the 503."
    )

    @property
    def max_upload_bytes(self) -> int:
        return mb_to_bytes(self.max_upload_mb)

    @property
    def burst(self) -> int:
        return max(1, self.rate_per_minute // 10)
