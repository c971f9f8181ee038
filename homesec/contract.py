"""The MQTT contract: every topic name and payload schema lives here, and only here.

Nodes never build topic strings by hand: they ask a `Topics` instance (which knows the configured
prefix). `docs/mqtt.md` is the human version of this module; `tests/test_contract.py` keeps the two
in step.

Conventions
- JSON payloads are pydantic models deriving from `Payload`: `v` (schema version), UTC ISO-8601 `ts`.
- Images travel as raw JPEG bytes on their own topics, so JSON topics stay readable with
  `mosquitto_sub -v`. Their metadata rides along as the MQTT v5 user property `meta` (a JSON string of
  the matching model), so an image and its metadata arrive atomically in one message.
- Events: QoS 1, never retained. State: QoS 1, retained.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
META_PROPERTY = "meta"
JPEG_CONTENT_TYPE = "image/jpeg"
JSON_CONTENT_TYPE = "application/json"

# Labels name people; they end up in topics, file names and captions, so keep them boring.
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
# Ids (camera, node instance) appear as single topic levels.
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,31}$")


class ContractError(ValueError):
    """A message that does not fit the contract (bad JSON, bad fields, bad label...)."""


def check_label(label: str) -> str:
    """Return `label` stripped if it is a safe person label, else raise ContractError."""
    cleaned = label.strip()
    if not LABEL_RE.match(cleaned) or ".." in cleaned:
        raise ContractError(
            f"invalid label {label!r}: use 1-64 letters, digits, space, '_', '-', '.' "
            "(starting with a letter or digit, no '..')"
        )
    return cleaned


def check_id(value: str, what: str = "id") -> str:
    if not ID_RE.match(value):
        raise ContractError(f"invalid {what} {value!r}: use 1-32 of a-z, 0-9, '_', '-'")
    return value


def _label(value: str) -> str:
    return check_label(value)


Label = Annotated[str, AfterValidator(_label)]


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Role(StrEnum):
    """One MQTT user per node role; the ACL is written per role."""

    CAMERA = "camera"
    RECOGNIZER = "recognizer"
    NOTIFIER = "notifier"
    ADMIN = "admin"  # the `homesec` command line: sends commands, reads answers
    VIEWER = "viewer"  # read-only, for debugging with mosquitto_sub


class Availability(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"  # the last will: the node vanished
    STOPPED = "stopped"  # the node left cleanly


class Verdict(StrEnum):
    KNOWN = "known"
    UNKNOWN = "unknown"
    NO_FACE = "no_face"


# --------------------------------------------------------------------------------------------- topics


@dataclass(frozen=True)
class Topics:
    """All topic names, for one prefix. `+` wildcards appear only in subscription filters."""

    prefix: str = "homesec"

    # availability and errors, per node: node is e.g. "camera/door", "recognizer/r1", "notifier/main"
    def available(self, node: str) -> str:
        return f"{self.prefix}/{node}/available"

    def error(self, node: str) -> str:
        return f"{self.prefix}/{node}/error"

    @property
    def all_available(self) -> str:
        return f"{self.prefix}/+/+/available"

    # camera
    def snapshot(self, camera: str) -> str:
        return f"{self.prefix}/camera/{camera}/snapshot"

    def motion(self, camera: str) -> str:
        return f"{self.prefix}/camera/{camera}/motion"

    def camera_enabled(self, camera: str) -> str:
        return f"{self.prefix}/camera/{camera}/enabled"

    def camera_cmd_capture(self, camera: str) -> str:
        return f"{self.prefix}/camera/{camera}/cmd/capture"

    def camera_cmd_enable(self, camera: str) -> str:
        return f"{self.prefix}/camera/{camera}/cmd/enable"

    @property
    def all_snapshots(self) -> str:
        return self.snapshot("+")

    @property
    def shared_snapshots(self) -> str:
        """Replicas of the recognizer split the snapshots between them."""
        return f"$share/recognizer/{self.all_snapshots}"

    # recognizer
    def result(self, camera: str) -> str:
        return f"{self.prefix}/recognizer/result/{camera}"

    def alert(self, camera: str) -> str:
        return f"{self.prefix}/recognizer/alert/{camera}"

    @property
    def all_results(self) -> str:
        return self.result("+")

    @property
    def all_alerts(self) -> str:
        return self.alert("+")

    @property
    def gallery(self) -> str:
        return f"{self.prefix}/recognizer/gallery"

    @property
    def train(self) -> str:
        return f"{self.prefix}/train"

    def train_raw(self, label: str) -> str:
        return f"{self.prefix}/train/{label}"

    @property
    def train_raw_filter(self) -> str:
        return f"{self.prefix}/train/+"

    @property
    def train_result(self) -> str:
        return f"{self.prefix}/recognizer/train/result"

    @property
    def gallery_cmd(self) -> str:
        return f"{self.prefix}/recognizer/cmd/gallery"

    @property
    def gallery_result(self) -> str:
        return f"{self.prefix}/recognizer/gallery/result"

    @property
    def search_cmd(self) -> str:
        return f"{self.prefix}/recognizer/cmd/search"

    @property
    def search_result(self) -> str:
        return f"{self.prefix}/recognizer/search/result"

    # notifier
    @property
    def armed(self) -> str:
        return f"{self.prefix}/notifier/armed"

    @property
    def armed_cmd(self) -> str:
        return f"{self.prefix}/notifier/cmd/arm"

    @property
    def delivered(self) -> str:
        return f"{self.prefix}/notifier/delivered"

    @property
    def reply_root(self) -> str:
        return f"{self.prefix}/reply/"

    def reply(self, role: str, client: str) -> str:
        """MQTT v5 response topic for a requester (the ACL lets the recognizer answer only here)."""
        return f"{self.prefix}/reply/{role}/{client}"

    def label_from_train_raw(self, topic: str) -> str:
        head = self.train + "/"
        if not topic.startswith(head):
            raise ContractError(f"not a training topic: {topic}")
        return check_label(topic[len(head) :])

    def camera_from_topic(self, topic: str) -> str:
        """The camera id in `<prefix>/camera/<id>/...` or `<prefix>/recognizer/<kind>/<id>`."""
        parts = topic[len(self.prefix) + 1 :].split("/")
        if len(parts) >= 2 and parts[0] == "camera":
            return check_id(parts[1], "camera")
        if len(parts) == 3 and parts[0] == "recognizer":
            return check_id(parts[2], "camera")
        raise ContractError(f"no camera id in topic {topic}")


# ---------------------------------------------------------------------------------------- payloads


class Payload(BaseModel):
    """Base of every JSON payload: strict (unknown fields refused), versioned, timestamped."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1  # SCHEMA_VERSION
    ts: str = Field(default_factory=utc_now)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


P = TypeVar("P", bound=BaseModel)


def parse(model: type[P], raw: bytes | str) -> P:
    """Decode a payload, turning every failure into one ContractError with a readable detail."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ContractError(f"invalid {model.__name__}: {problems}") from None


class ErrorReport(Payload):
    """Published on a node's error topic for every message it could not handle."""

    error: str  # short machine-friendly kind, e.g. "bad_payload", "handler_failed"
    detail: str
    topic: str
    node: str


class SnapshotMeta(Payload):
    """`meta` user property of a snapshot (payload: JPEG)."""

    camera: str
    event_id: str
    seq: int = Field(ge=0)
    burst: int = Field(ge=1)
    trigger: Literal["pir", "motion", "pir+motion", "manual", "replay"]
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    # Where the motion was, in full-resolution pixels (x1, y1, x2, y2), when known.
    motion_box: tuple[int, int, int, int] | None = None


class MotionEvent(Payload):
    camera: str
    event_id: str
    state: Literal["start", "end"]
    trigger: Literal["pir", "motion", "pir+motion", "manual", "replay"]
    score: float | None = None  # fraction of changed pixels, for frame differencing


class CameraEnabled(Payload):
    camera: str
    enabled: bool


class CaptureCommand(Payload):
    request_id: str = Field(default_factory=new_id)
    burst: int | None = Field(default=None, ge=1, le=20)


class EnableCommand(Payload):
    enabled: bool


class Face(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in snapshot pixels
    score: float  # detection score
    label: str | None  # None = unknown
    similarity: float | None  # best gallery similarity (also when below the threshold)
    closest: str | None = None  # closest label even when not matched
    quality: float | None = None
    rejected: str | None = None  # why the face was not used for matching (too small, blurred...)
    visitor: str | None = None  # stable id of a recurring unknown face
    visitor_seen_week: int | None = None  # events with this visitor in the last 7 days (issue 7)


class RecognitionResult(Payload):
    camera: str
    event_id: str
    seq: int
    verdict: Verdict
    faces: list[Face]
    timings_ms: dict[str, float]
    model: str
    node: str


class Alert(Payload):
    """`meta` user property of an alert (payload: the snapshot JPEG with faces boxed)."""

    camera: str
    event_id: str
    seq: int
    verdict: Verdict
    faces: list[Face]
    snapshot_ts: str
    # A capture someone asked for (/snapshot, `homesec capture`): sent whatever the verdict, armed or not.
    requested: bool = False


class TrainRequest(Payload):
    request_id: str = Field(default_factory=new_id)
    label: Label
    image_b64: str
    largest: bool = False  # several faces: enroll the largest instead of refusing
    source: str = "mqtt"


class TrainResult(Payload):
    request_id: str
    label: str | None
    ok: bool
    reason: str | None = None  # why it was refused
    enrollment_id: int | None = None
    faces_found: int = 0
    quality: float | None = None


class GalleryCommand(Payload):
    request_id: str = Field(default_factory=new_id)
    op: Literal["list", "delete_label", "rename_label", "delete_enrollment", "name_visitor"]
    label: Label | None = None
    new_label: Label | None = None
    enrollment_id: int | None = None
    visitor: int | None = None  # name_visitor: enroll its archived faces as `label`


class GalleryResult(Payload):
    request_id: str
    op: str
    ok: bool
    reason: str | None = None
    labels: dict[str, int] = Field(default_factory=dict)
    removed: int = 0
    enrolled: int = 0  # name_visitor: faces enrolled


class GallerySummary(Payload):
    labels: dict[str, int]  # label -> number of enrollments
    enrollments: int
    model: str


class ArmedState(Payload):
    armed: bool
    by: str = "default"


class ArmCommand(Payload):
    armed: bool
    by: str = "mqtt"


class Delivered(Payload):
    """The notifier sent an alert (to Telegram or the outbox)."""

    event_id: str
    camera: str
    channel: Literal["telegram", "outbox"]
    chat_id: str | None = None
    grouped: int = 1  # photos of the same event folded into this one


class SearchRequest(Payload):
    request_id: str = Field(default_factory=new_id)
    image_b64: str
    threshold: float | None = None
    top: int = Field(default=20, ge=1, le=1000)


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: str
    camera: str
    ts: str
    similarity: float
    box: tuple[int, int, int, int]
    snapshot: str | None = None


class SearchResult(Payload):
    request_id: str
    ok: bool
    reason: str | None = None
    hits: list[SearchHit] = Field(default_factory=list)


def meta_property(payload: Payload) -> dict[str, str]:
    """User properties that carry `payload` beside an image."""
    return {META_PROPERTY: payload.model_dump_json()}


def parse_meta(model: type[P], user_properties: dict[str, str]) -> P:
    raw = user_properties.get(META_PROPERTY)
    if raw is None:
        raise ContractError(f"missing '{META_PROPERTY}' user property on an image message")
    return parse(model, raw)
