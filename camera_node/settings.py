"""The `[camera]` config section. Imports only pydantic, the stdlib and the contract: loaded cheaply.

Sub-tables: `[camera.replay]`, `[camera.pir]`, `[camera.motion]`, `[camera.burst]`, `[camera.spool]`,
`[camera.frigate]`. Several cameras in one node: `[[cameras]]` tables with the same keys (each its own
`id`, motion, mask, burst and credential) instead of `[camera]`.
Motion sizes are in lores pixels or fractions of the lores frame; the ignore rectangles are fractions,
so they survive a change of `lores`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

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


class FrigateSettings(Section):
    """source = 'frigate': Frigate's own MQTT broker and its event filter (camera.url is its HTTP API)."""

    host: str = Field("127.0.0.1", description="Host of the MQTT broker Frigate publishes its events on.")
    port: int = Field(1883, ge=1, le=65535, description="Port of Frigate's MQTT broker.")
    username: str | None = Field(None, description="User on Frigate's broker (None: anonymous).")
    password_file: Path | None = Field(
        None,
        description="File holding that user's password; default <data_dir>/secrets/frigate-<id>.password "
        "when it exists.",
    )
    topic_prefix: str = Field(
        "frigate", description="Frigate's mqtt.topic_prefix: events come on <it>/events."
    )
    camera: str | None = Field(
        None, description="Only events of this Frigate camera (its name in Frigate's config); None: all."
    )
    labels: list[str] = Field(default_factory=lambda: ["person"], description="Event labels that count.")
    min_score: float = Field(0.0, ge=0, le=1, description="Skip events whose top_score is below this.")


Source = Literal["replay", "picamera2", "rtsp", "http", "mjpeg", "usb", "frigate"]
URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "rtsp": ("rtsp", "rtsps"),
    "http": ("http", "https"),
    "mjpeg": ("http", "https"),
    "frigate": ("http", "https"),
}


class CameraSettings(Section):
    id: str = Field("door", description="Camera id, one topic level: 1-32 of a-z, 0-9, '_', '-'.")
    enabled: bool = Field(True, description="Initial state; later changes over MQTT are kept in data_dir.")
    source: Source = Field(
        "replay",
        description="'picamera2' on a Raspberry Pi; 'replay' plays images from replay.dir; 'rtsp' an IP "
        "camera's stream (url, substream_url); 'http' a snapshot URL polled fps times a second; 'mjpeg' an "
        "MJPEG stream over HTTP; 'usb' a V4L2 webcam (device); 'frigate' snapshots of Frigate's person "
        "events (url: Frigate's HTTP API; [camera.frigate]). See docs/cameras.md.",
    )
    url: str | None = Field(
        None,
        description="rtsp/http/mjpeg: the stream or snapshot address, without the password (that goes in "
        "password_file); frigate: Frigate's HTTP API, e.g. http://frigate.lan:5000.",
    )
    substream_url: str | None = Field(
        None,
        description="rtsp: the camera's low-resolution substream, for motion detection (None: the main "
        "stream, scaled down to lores).",
    )
    device: str = Field("/dev/video0", description="usb: the V4L2 device.")
    username: str | None = Field(None, description="User for the camera's stream or snapshot URL.")
    password_file: Path | None = Field(
        None,
        description="File holding the camera's password (mode 600); default "
        "<data_dir>/secrets/camera-<id>.password when it exists. Never logged: URLs show user:***@.",
    )
    auth: Literal["basic", "digest"] = Field(
        "digest",
        description="http: the snapshot URL's authentication ('digest' also answers a camera that asks for "
        "basic; 'basic' sends the password up front). mjpeg and rtsp answer either by themselves (FFmpeg).",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="rtsp: RTP over the RTSP connection (tcp, through NAT and Wi-Fi) or udp."
    )
    timeout_s: float = Field(
        10.0, gt=0, le=120, description="Opening a stream or fetching a snapshot fails after this long."
    )
    reopen_max_s: float = Field(
        60.0, ge=1, le=3600, description="Longest pause between attempts to reopen a failed source."
    )
    resolution: Size = Field((1920, 1080), description="Full-resolution (main stream) size, width x height.")
    lores: Size = Field((320, 240), description="Low-resolution stream for motion detection, width x height.")
    fps: float = Field(
        10.0,
        gt=0,
        le=120,
        description="Frame rate (picamera2, usb); for rtsp/mjpeg the motion-detection rate (the stream is "
        "decimated to it); for http the polling rate.",
    )
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
    frigate: FrigateSettings = Field(default_factory=FrigateSettings)

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
        for key in ("url", "substream_url"):
            if (url := getattr(self, key)) is not None:
                _check_url(key, url, self.source)
        if self.source in URL_SCHEMES and self.url is None:
            raise ValueError(f"source = {self.source!r} needs camera.url")
        if self.substream_url is not None and self.source != "rtsp":
            raise ValueError("substream_url is for source = 'rtsp'")
        return self


def _check_url(key: str, url: str, source: str) -> None:
    """A stream address: the scheme its source speaks, and no password (secrets never sit in the config)."""
    parts = urlsplit(url)
    schemes = URL_SCHEMES.get(source)
    if (schemes and parts.scheme not in schemes) or not parts.hostname:
        wanted = " or ".join(f"{s}://host/..." for s in schemes or ("rtsp", "http"))
        raise ValueError(f"{key} for source = {source!r} must look like {wanted}")
    if parts.password is not None:
        raise ValueError(
            f"{key} holds a password: put the user in camera.username and the password in a file "
            "named by camera.password_file (secrets never go in the config)"
        )
