"""The `[camera]` config section. Imports only pydantic, the stdlib and the contract: loaded cheaply.

Sub-tables: `[camera.replay]`, `[camera.pir]`, `[camera.motion]`, `[camera.burst]`, `[camera.spool]`.
Motion sizes are in lores pixels or fractions of the lores frame; the ignore rectangles are fractions,
so they survive a change of `lores`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from homesec.contract import ID_RE, TriggerMode
from homesec.settings import Section

Size = tuple[int, int]
Rect = tuple[float, float, float, float]


class ReplaySettings(Section):
    dir: Path | None = Field(
        None,
        description="Directory of images (JPEG/PNG), replayed in sorted file-name order; required when "
        "source = 'replay' (checked when the camera starts, so other nodes can share the file).",
    )
    fps: float = Field(10.0, gt=0, le=120, description="Replay rate, frames per second.")
    loop: bool = Field(True, description="Start again from the first image after the last one.")


class PirSettings(Section):
    pin: int | str = Field(
        17, description="GPIO of the PIR output: BCM number (17) or a name ('GPIO17', 'BOARD11')."
    )
    queue_len: int = Field(1, ge=1, le=100, description="gpiozero MotionSensor queue_len: readings averaged.")
    sample_rate: float = Field(
        10.0, gt=0, le=1000, description="gpiozero MotionSensor sample_rate, readings/s."
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="gpiozero MotionSensor threshold: average above it counts as motion."
    )
    confirm_window_s: float = Field(
        3.0,
        gt=0,
        le=60,
        description="pir+motion: seconds after a PIR trigger in which frame motion confirms it.",
    )


class MotionSettings(Section):
    threshold: int = Field(
        25,
        ge=1,
        le=254,
        description="Per-pixel luma change (0-255) above which a lores pixel counts as changed.",
    )
    min_area: float = Field(
        0.005,
        gt=0,
        description="Changed area that counts as motion: below 1 a fraction of the (unmasked) frame, "
        "from 1 up a number of lores pixels.",
    )
    min_frames: int = Field(
        2, ge=1, le=100, description="Consecutive motion frames needed to start an event."
    )
    event_gap_s: float = Field(5.0, gt=0, le=3600, description="Seconds without motion that end an event.")
    light_switch: float = Field(
        0.5,
        gt=0,
        le=1,
        description="More than this fraction of pixels changing at once is a light switching, not motion "
        "(1 disables the check).",
    )
    light_switch_frames: int = Field(
        5, ge=0, le=100, description="Frames ignored after a light switch while exposure settles."
    )
    compensate_brightness: bool = Field(
        True,
        description="Subtract the frame's median change before thresholding, so gradual global light "
        "changes (auto exposure, clouds) are not motion.",
    )
    despeckle: bool = Field(
        True, description="Ignore isolated changed pixels (sensor noise): only 2x2 changed blocks count."
    )
    ignore: list[Rect] = Field(
        default_factory=list,
        description="Regions to ignore, as [x1, y1, x2, y2] fractions (0-1) of the frame, e.g. a tree.",
    )
    mask_file: Path | None = Field(
        None, description="PNG mask, resized to the lores size: black pixels are ignored (as in Motion)."
    )

    @field_validator("ignore")
    @classmethod
    def _rects(cls, rects: list[Rect]) -> list[Rect]:
        for r in rects:
            x1, y1, x2, y2 = r
            if not all(0.0 <= v <= 1.0 for v in r) or x1 >= x2 or y1 >= y2:
                raise ValueError(
                    f"ignore rectangle {list(r)} must be [x1, y1, x2, y2] fractions with 0 <= x1 < x2 <= 1 "
                    "and 0 <= y1 < y2 <= 1"
                )
        return rects


class BurstSettings(Section):
    count: int = Field(3, ge=1, le=20, description="Full-resolution snapshots per event.")
    interval_s: float = Field(0.5, ge=0, le=30, description="Seconds between the snapshots of a burst.")
    jpeg_quality: int = Field(85, ge=10, le=95, description="JPEG quality of the snapshots.")


class SpoolSettings(Section):
    max_items: int = Field(
        500, ge=1, description="Snapshots kept on disk until their recognition result is seen."
    )
    max_mb: float = Field(200.0, gt=0, description="Disk bound of that spool, in MB; the oldest go first.")


class CameraSettings(Section):
    id: str = Field("door", description="Camera id, one topic level: 1-32 of a-z, 0-9, '_', '-'.")
    enabled: bool = Field(True, description="Initial state; later changes over MQTT are kept in data_dir.")
    source: Literal["replay", "picamera2"] = Field(
        "replay", description="'picamera2' on a Raspberry Pi; 'replay' plays images from replay.dir."
    )
    resolution: Size = Field((1920, 1080), description="Full-resolution (main stream) size, width x height.")
    lores: Size = Field((320, 240), description="Low-resolution stream for motion detection, width x height.")
    fps: float = Field(10.0, gt=0, le=120, description="Camera frame rate (picamera2).")
    trigger: TriggerMode = Field(
        "motion",
        description="'pir', 'motion' (frame differencing), 'pir+motion' (PIR arms, frames confirm), "
        "'manual' (capture commands only).",
    )
    cooldown_s: float = Field(
        10.0, ge=0, le=3600, description="Seconds after an event ends before a new one."
    )
    publish_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Wait this long for the broker's ack of a publish before retrying."
    )
    confirm_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Publish a snapshot again when its recognition result has not been seen this long "
        "after it was published (a broker crash, a full broker queue or a dead recognizer lost it).",
    )
    max_in_flight: int = Field(
        20,
        ge=1,
        le=1000,
        description="Snapshots published and not yet answered by the recognizer at any time; the rest "
        "wait in the spool, in order.",
    )
    max_attempts: int = Field(
        5,
        ge=1,
        le=1000,
        description="Publish a snapshot at most this often without seeing its result while the "
        "recognizer answers others (an absent recognizer costs no attempt); then drop it from the spool "
        "and report it as `unconfirmed` on the camera's error topic.",
    )
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    pir: PirSettings = Field(default_factory=PirSettings)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    burst: BurstSettings = Field(default_factory=BurstSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(f"camera id {v!r}: use 1-32 of a-z, 0-9, '_', '-' (it is a topic level)")
        return v

    @field_validator("resolution", "lores")
    @classmethod
    def _size(cls, v: Size) -> Size:
        w, h = v
        if w < 16 or h < 16 or w > 8192 or h > 8192 or w % 2 or h % 2:
            raise ValueError(f"size {w}x{h}: width and height must be even and between 16 and 8192")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.lores[0] > self.resolution[0] or self.lores[1] > self.resolution[1]:
            raise ValueError(f"lores {self.lores} must not be larger than resolution {self.resolution}")
        return self
