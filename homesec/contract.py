"""The MQTT contract: every topic name and payload schema lives here, and only here.

Nodes never build or take apart topic strings by hand: they ask a `Topics` instance (which knows the
configured prefix). `docs/mqtt.md` is the human version of this module; `tests/test_contract.py` and
`tests/test_core.py` keep the two in step.

Conventions
- JSON payloads are pydantic models deriving from `Payload`: `v` (schema version), `ts` (a UTC time,
  ISO-8601 with milliseconds and `Z` on the wire).
- Images travel as raw JPEG bytes on their own topics, so JSON topics stay readable with
  `mosquitto_sub -v`. Their metadata rides along as the MQTT v5 user property `meta` (a JSON string of
  the matching model), so an image and its metadata arrive atomically in one message. Training and
  search also take a JSON body with the image in base64, for MQTT 3.1.1 clients that cannot send user
  properties; `decode_train` and `decode_search` turn either form into the same request.
- Events: QoS 1, never retained. State: QoS 1, retained.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

META_PROPERTY = "meta"
# The request id of a raw `train/<label>` image from a client that sends no `meta` (documented).
REQUEST_ID_PROPERTY = "request_id"
JPEG_CONTENT_TYPE = "image/jpeg"
JSON_CONTENT_TYPE = "application/json"

# Labels name people; they end up in topics, file names and captions, so keep them boring.
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
# Ids (camera, node instance) appear as single topic levels. The pattern is also given to pydantic
# `Field(pattern=...)` in the settings sections.
ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,31}$"
ID_RE = re.compile(ID_PATTERN)
# Event and request ids also name files (archive, spool): these are safe as they are.
FILE_SAFE_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

# What a camera can be configured to wait for, and what a snapshot or motion event says started it
# ("frigate": an event of Frigate's, for a camera whose source is Frigate).
TriggerMode = Literal["pir", "motion", "pir+motion", "manual"]
Trigger = Literal[TriggerMode, "replay", "frigate"]


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


# A person's display name may be in any script (`José`, `李雷`): it is shown, never used as a topic level
# or a file name. Forbidden: what could pass for a path or a topic wildcard, and invisible characters
# (except the joiners some scripts spell names with).
_NAME_FORBIDDEN = ("/", "\\", "+", "#", "..")
_NAME_JOINERS = frozenset("\u200c\u200d")


def _visible(char: str) -> bool:
    kind = unicodedata.category(char)
    return char in _NAME_JOINERS or (kind[0] != "C" and kind not in ("Zl", "Zp"))


def check_name(name: str) -> str:
    """Return `name` (NFC, stripped) if it can name a person: a label (`check_label`) or a display name
    in any script of 1-64 characters starting with a letter or digit; else raise ContractError."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    if (
        not 0 < len(cleaned) <= 64
        or unicodedata.category(cleaned[0])[0] not in "LN"
        or not all(_visible(c) for c in cleaned)
        or any(bad in cleaned for bad in _NAME_FORBIDDEN)
    ):
        raise ContractError(
            f"invalid label {name!r}: a name of 1-64 characters in any script, starting with a letter or "
            "digit, without '/', '\\', '+', '#', '..' or control characters"
        )
    return cleaned


# What a request names a person by: their label or their display name (the gallery resolves either;
# a new name gets a label derived from it, recognizer_node/gallery.py).
Label = Annotated[str, AfterValidator(check_name)]


def new_id() -> str:
    return uuid.uuid4().hex


# ------------------------------------------------------------------------------------------- time

# A day inside datetime's range on both sides, so any UTC time accepted here can still be shown in any
# local zone (offsets stay within a day) without an OverflowError.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def utc_now() -> datetime:
    """Now, in UTC, to the millisecond (what the wire carries, so a round trip compares equal)."""
    return _to_millisecond(datetime.now(UTC))


def to_iso(moment: datetime | float) -> str:
    """The wire form of an aware time or of epoch seconds: UTC ISO-8601 with milliseconds and `Z`."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_iso(text: str) -> datetime:
    """Parse an ISO-8601 time with an offset (any offset; returned in UTC), else raise ContractError."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ContractError(f"not an ISO-8601 time: {text!r}") from None
    return _checked(moment, repr(text))


def _checked(moment: datetime, shown: str) -> datetime:
    if moment.utcoffset() is None:
        raise ContractError(f"time {shown} has no UTC offset: add 'Z' or e.g. '+01:00'")
    out_of_range = ContractError(f"time {shown} is out of range")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # before year 1 or after 9999 once in UTC
        raise out_of_range from None
    if not _EARLIEST <= utc <= _LATEST:
        raise out_of_range
    return _to_millisecond(utc)


def _to_millisecond(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _timestamp(value: object) -> datetime:
    if isinstance(value, datetime):
        return _checked(value, value.isoformat())
    if isinstance(value, str):
        return from_iso(value)
    raise ContractError(f"expected an ISO-8601 time string, got {type(value).__name__}")


# An aware UTC datetime in Python, `2026-12-01T08:00:00.123Z` on the wire.
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), PlainSerializer(to_iso, return_type=str)]


class Role(StrEnum):
    """One MQTT user per node role; the ACL is written per role."""

    CAMERA = "camera"
    RECOGNIZER = "recognizer"
    NOTIFIER = "notifier"
    ADMIN = "admin"  # the `homesec` command line: sends commands, reads answers
    VIEWER = "viewer"  # read-only, for debugging with mosquitto_sub
    # Home Assistant's own MQTT integration: reads state and discovery, sends arm/enable/capture only
    HOMEASSISTANT = "homeassistant"
    # the bridge node (homeassistant_node): publishes the discovery configs and the state they derive
    HA_BRIDGE = "habridge"


class Availability(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"  # the last will: the node vanished
    STOPPED = "stopped"  # the node left cleanly


def node_name(role: Role | str, node_id: str) -> str:
    """A node's name, `<role>/<id>` (`camera/door`): two topic levels in its availability and error topics."""
    return f"{role}/{check_id(node_id, 'node id')}"


def split_node(node: str) -> tuple[str, str]:
    """(role, id) of a node name: `camera/door` -> ("camera", "door")."""
    role, sep, node_id = node.partition("/")
    if not sep or not role:
        raise ContractError(f"not a node name (role/id): {node!r}")
    return role, check_id(node_id, "node id")


class Verdict(StrEnum):
    KNOWN = "known"
    UNKNOWN = "unknown"
    NO_FACE = "no_face"
    # Someone is there but every face is too small to judge: not a stranger, not "unknown person".
    TOO_SMALL = "too_small"


# --------------------------------------------------------------------------------------------- topics


def ha_node_id(prefix: str) -> str:
    """The node id of homesec's Home Assistant discovery topics: `homesec`, or `homesec_<prefix>` for
    another prefix (two installations on one broker stay apart)."""
    tail = re.sub(r"[^a-z0-9]+", "_", prefix.lower()).strip("_")
    return "homesec" if tail == "homesec" else f"homesec_{tail}"


@dataclass(frozen=True)
class Topics:
    """All topic names, for one prefix. `+` wildcards appear only in subscription filters."""

    prefix: str = "homesec"
    share_group: str = "recognizer"
    """The recognizers' shared-subscription group: a per-deployment secret (`homesec broker init`)."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's MQTT discovery prefix (`[homeassistant] discovery_prefix`): its topics sit
    outside homesec's prefix, where Home Assistant looks for them."""

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

    def camera_cmd_show(self, camera: str) -> str:
        """A JPEG the camera treats as a capture of its own (`homesec capture CAMERA --image FILE`)."""
        return f"{self.prefix}/camera/{camera}/cmd/show"

    def camera_state(self, camera: str) -> str:
        """The camera's video source: online, offline or error (retained)."""
        return f"{self.prefix}/camera/{camera}/state"

    @property
    def all_snapshots(self) -> str:
        return self.snapshot("+")

    @property
    def shared_snapshots(self) -> str:
        """Replicas of the recognizer split the snapshots between them."""
        return f"$share/{self.share_group}/{self.all_snapshots}"

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

    @property
    def archive_cmd(self) -> str:
        """Reads of the event archive (visits, visitors): answered on the requester's reply topic only."""
        return f"{self.prefix}/recognizer/cmd/archive"

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

    # Home Assistant (homeassistant_node): discovery under its prefix, derived state under ours
    def ha_discovery(self, component: str, object_id: str) -> str:
        """One entity's retained discovery config (an empty retained payload removes the entity)."""
        return f"{self.discovery_prefix}/{component}/{ha_node_id(self.prefix)}/{object_id}/config"

    @property
    def ha_all_discovery(self) -> str:
        return self.ha_discovery("+", "+")

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and last will (`online` / `offline`)."""
        return f"{self.discovery_prefix}/status"

    def ha_visit(self, camera: str) -> str:
        """One event per visit decision, for Home Assistant's `event` entity."""
        return f"{self.prefix}/{Role.HA_BRIDGE}/visit/{camera}"

    def ha_last_person(self, camera: str) -> str:
        return f"{self.prefix}/{Role.HA_BRIDGE}/last_person/{camera}"

    def ha_last_seen(self, person: str) -> str:
        """`person` is the label made safe for a topic level and an object id (`rose_a_e55bf3` for
        `Rose A.`: homeassistant_node.entities.person_id), since labels may hold spaces and dots."""
        return f"{self.prefix}/{Role.HA_BRIDGE}/last_seen/{person}"

    @property
    def ha_recognizers(self) -> str:
        """`online` while at least one recognizer replica is: the availability of what recognition feeds."""
        return f"{self.prefix}/{Role.HA_BRIDGE}/recognizers"

    # parsers: the inverse of the builders above

    def levels(self, topic: str) -> list[str]:
        """The levels of `topic` below the prefix: `homesec/camera/door/motion` -> camera, door, motion."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise ContractError(f"topic {topic} is not under {head}")
        return topic[len(head) :].split("/")

    def node_from_available(self, topic: str) -> str:
        """The node (`camera/door`) of `<prefix>/<role>/<id>/available`."""
        parts = self.levels(topic)
        if len(parts) != 3 or parts[2] != "available":
            raise ContractError(f"not an availability topic: {topic}")
        return node_name(parts[0], parts[1])

    def label_from_train_raw(self, topic: str) -> str:
        """The label or display name (any script) of `<prefix>/train/<label>`."""
        head = self.train + "/"
        if not topic.startswith(head):
            raise ContractError(f"not a training topic: {topic}")
        return check_name(topic[len(head) :])

    def camera_from_topic(self, topic: str) -> str:
        """The camera id in `<prefix>/camera/<id>/...` or `<prefix>/recognizer/<kind>/<id>`."""
        parts = self.levels(topic) if topic.startswith(self.prefix + "/") else []
        if len(parts) >= 2 and parts[0] == "camera":
            return check_id(parts[1], "camera")
        if len(parts) == 3 and parts[0] == "recognizer":
            return check_id(parts[2], "camera")
        raise ContractError(f"no camera id in topic {topic}")


# ---------------------------------------------------------------------------------------- payloads


class Payload(BaseModel):
    """Base of every JSON payload: strict (unknown fields refused), versioned, timestamped."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1  # the schema version: a breaking change gets a new number
    ts: Timestamp = Field(default_factory=utc_now)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


P = TypeVar("P", bound=BaseModel)


def parse(model: type[P], raw: bytes | str) -> P:
    """Decode a payload, turning every failure into one ContractError with a readable detail."""
    return _validated(model.__name__, model.model_validate, _json_object(raw))


def _json_object(raw: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise ContractError(f"not JSON: {exc}") from None
    except RecursionError:  # `[[[[...` a few thousand deep: the decoder recurses once per level
        raise ContractError(
            "JSON nested too deeply (no payload of the contract nests beyond a few levels)"
        ) from None
    if not isinstance(data, dict):
        raise ContractError(f"expected a JSON object, got {type(data).__name__}")
    return data


T = TypeVar("T")

_MAX_PROBLEMS = 5  # named in a refusal; a payload with 100k unknown fields would name them all


def _validated(name: str, validate: Callable[[dict[str, Any]], T], data: dict[str, Any]) -> T:
    try:
        return validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(_problem(e) for e in errors[:_MAX_PROBLEMS])
        if len(errors) > _MAX_PROBLEMS:  # the reason travels back in the answer: keep it small
            problems += f"; and {len(errors) - _MAX_PROBLEMS} more"
        raise ContractError(f"invalid {name}: {problems}") from None


def _problem(error: ErrorDetails) -> str:
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx", {})
    if kind == "missing":  # "rename_label: needs 'new_label'" (in a union, the first level is the op)
        parent = ".".join(str(p) for p in loc[:-1])
        return f"{parent}: needs {loc[-1]!r}" if parent else f"needs {loc[-1]!r}"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tag = ctx["discriminator"].strip("'")  # pydantic quotes it
        if kind == "union_tag_not_found":
            return f"needs {tag!r}"
        return f"{tag} {ctx['tag']!r} is not one of {ctx['expected_tags']}"
    where = ".".join(str(p) for p in loc) or "(root)"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


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
    trigger: Trigger
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    # Where the motion was, in full-resolution pixels (x1, y1, x2, y2), when known.
    motion_box: tuple[int, int, int, int] | None = None


class MotionEvent(Payload):
    camera: str
    event_id: str
    state: Literal["start", "end"]
    trigger: Trigger
    score: float | None = None  # fraction of changed pixels, for frame differencing


class CameraEnabled(Payload):
    camera: str
    enabled: bool


class CaptureCommand(Payload):
    request_id: str = Field(default_factory=new_id)
    burst: int | None = Field(default=None, ge=1, le=20)


class EnableCommand(Payload):
    enabled: bool


class ShowCommand(Payload):
    """`meta` user property of a JPEG on `camera/<camera>/cmd/show` (optional: the JPEG alone will do)."""

    request_id: str = Field(default_factory=new_id)


class CameraState(Payload):
    """Whether a camera's video source delivers frames (retained, per camera)."""

    camera: str
    state: Literal["online", "offline", "error"]
    # Why it is offline or in error, e.g. "401 Unauthorized", "connection refused", "no video".
    reason: str | None = None


class Face(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in snapshot pixels
    score: float  # detection score
    label: str | None  # None = unknown
    similarity: float | None  # best gallery similarity (also when below the threshold)
    closest: str | None = None  # closest label even when not matched
    # unknown because ambiguous: the label within the margin of `closest` (too close to call between them)
    ambiguous_with: str | None = None
    quality: float | None = None
    rejected: str | None = None  # why the face was not used for matching (too small, blurred...)
    visitor: str | None = None  # stable id of a recurring unknown face
    visitor_seen_week: int | None = None  # events with this visitor in the last 7 days
    name: str | None = None  # how the person `label` names is shown (any script: `José`)


class VisitState(BaseModel):
    """The verdict of the whole visit (the frames of one motion event) so far."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    verdict: Verdict
    frames: int = Field(ge=1)  # frames of the visit seen so far
    decided: bool  # false: waiting for more frames of the visit before deciding (and alerting)
    revision: int | None = None  # 0 when first decided, then +1 at each change of the visit's verdict


class RecognitionResult(Payload):
    camera: str
    event_id: str
    seq: int
    verdict: Verdict  # this frame's
    faces: list[Face]
    timings_ms: dict[str, float]
    model: str
    node: str
    visit: VisitState | None = None
    # Set when the snapshot could not be processed (not an image, too large to decode, bad metadata): why.
    # The result still answers it, so the camera stops publishing it again; verdict `no_face`, no faces.
    error: str | None = None


class Alert(Payload):
    """`meta` user property of an alert (payload: the snapshot JPEG with faces boxed)."""

    camera: str
    event_id: str
    seq: int
    verdict: Verdict
    faces: list[Face]
    snapshot_ts: Timestamp
    # A capture someone asked for (/snapshot, `homesec capture`): sent whatever the verdict, armed or not.
    requested: bool = False
    # The visit's decision: `verdict` is the visit's, `seq` and `faces` its best frame's; `frames` the
    # frames it is made of, `revision` 0 for the visit's first alert, more for a later change.
    frames: int = Field(default=1, ge=1)
    revision: int = Field(default=0, ge=0)


ALREADY_ENROLLED = "already enrolled"  # TrainResult.notice: the same photo again, nothing added


class TrainResult(Payload):
    request_id: str
    label: str | None
    # The enrolled person's display name (any script); `label` is their id. A retry of the same request
    # id is answered with the first answer, without enrolling again.
    name: str | None = None
    ok: bool
    reason: str | None = None  # why it was refused
    enrollment_id: int | None = None
    faces_found: int = 0
    quality: float | None = None
    # refused because the face already matches another label (train with `force` to enroll it anyway)
    looks_like: str | None = None
    looks_like_similarity: float | None = None
    # ok, with something to know: ALREADY_ENROLLED when the photo's face is already an enrollment of
    # the label (the same photo sent again): `enrollment_id` is that one, and nothing was added
    notice: str | None = None


class LabelConflict(BaseModel):
    """Two labels whose enrollments match each other: probably one person under two names."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    other: str
    similarity: float  # the best similarity between an enrollment of each


class GalleryResult(Payload):
    request_id: str
    op: str  # the command's op, or "?" when the command could not be read
    ok: bool
    reason: str | None = None
    labels: dict[str, int] = Field(default_factory=dict)
    removed: int = 0
    enrolled: int = 0  # name_visitor: faces enrolled
    negatives: dict[str, int] = Field(default_factory=dict)  # list, not_label: label -> "not them" faces
    enrollment_id: int | None = None  # enroll_face: the new enrollment
    conflicts: list[LabelConflict] = Field(default_factory=list)  # list: labels that match each other
    negative_id: int | None = None  # not_label: the negative kept (undo_not takes it back); undo_not: it
    names: dict[str, str] = Field(default_factory=dict)  # label -> display name, for every label listed


class GallerySummary(Payload):
    labels: dict[str, int]  # label -> number of enrollments
    names: dict[str, str] = Field(default_factory=dict)  # label -> display name (any script)
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


# What the Home Assistant bridge (homeassistant_node) derives from the results, for its entities.

VisitEventType = Literal["known_person", "unknown_person", "no_face"]


class VisitEvent(Payload):
    """A visit's decision (and each later revision of it), for Home Assistant's `event` entity: every
    field but `event_type` becomes an attribute of the event."""

    event_type: VisitEventType  # `too_small` visits are `no_face` (no face to judge), see `verdict`
    camera: str
    event_id: str
    verdict: Verdict
    labels: list[str] = Field(default_factory=list)  # the people named in the visit (their ids)
    names: list[str] = Field(default_factory=list)  # their display names, in the same order
    similarities: list[float] = Field(default_factory=list)  # each one's best similarity, same order
    visitors: list[str] = Field(default_factory=list)  # recurring unknown visitors seen in the visit
    frames: int = Field(default=1, ge=1)
    revision: int = Field(default=0, ge=0)


class LastPerson(Payload):
    """Who came last to a camera (retained): a named person, or a stranger (`label` null)."""

    camera: str
    event_id: str
    label: str | None
    name: str  # the display name, or "unknown"
    similarity: float | None = None
    visitor: str | None = None


class LastSeen(Payload):
    """When an enrolled person was last named (retained, per person); `ts` is that result's time."""

    label: str
    name: str
    camera: str
    event_id: str
    similarity: float | None = None


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: str
    camera: str
    ts: Timestamp  # when the snapshot was taken
    similarity: float
    box: tuple[int, int, int, int]
    snapshot: str | None = None


class SearchResult(Payload):
    request_id: str
    ok: bool
    reason: str | None = None
    hits: list[SearchHit] = Field(default_factory=list)


class ArchiveQuery(Payload):
    """A read of the event archive: the events (visits) that match the filters, newest first, or the
    recurring unknown visitors, most recently seen first. The same filters as the HTTP API's
    `/api/events` and `/api/visitors` (docs/http.md)."""

    request_id: str = Field(default_factory=new_id)
    what: Literal["events", "visitors"]
    camera: str | None = None
    verdict: Verdict | None = None  # events with a snapshot of this verdict
    label: str | None = None  # events where this person was named
    visitor: int | None = Field(default=None, ge=0)  # events where this unknown visitor was seen
    since: Timestamp | None = None  # snapshots taken at or after
    until: Timestamp | None = None  # snapshots taken before
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=500)


class ArchiveAnswer(Payload):
    """The answer to an ArchiveQuery. `events` and `visitors` hold the objects the HTTP API's routes
    return (`EventSummary`, `VisitorSummary` in docs/http.md)."""

    request_id: str
    ok: bool
    reason: str | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    total: int = 0  # events that match the filters
    next_offset: int | None = None  # None: the last page
    visitors: list[dict[str, Any]] = Field(default_factory=list)


def meta_property(payload: Payload) -> dict[str, str]:
    """User properties that carry `payload` beside an image."""
    return {META_PROPERTY: payload.model_dump_json()}


def parse_meta(model: type[P], user_properties: Mapping[str, str]) -> P:
    raw = user_properties.get(META_PROPERTY)
    if raw is None:
        raise ContractError(f"missing '{META_PROPERTY}' user property on an image message")
    return parse(model, raw)


# ------------------------------------------------------------------------------- gallery commands


class _GalleryOp(Payload):
    request_id: str = Field(default_factory=new_id)


class ListLabels(_GalleryOp):
    op: Literal["list"] = "list"


class DeleteLabel(_GalleryOp):
    op: Literal["delete_label"] = "delete_label"
    label: Label


class RenameLabel(_GalleryOp):
    op: Literal["rename_label"] = "rename_label"
    label: Label
    new_label: Label
    name: Label | None = None  # the display name to show (default: `new_label` as typed)


class DeleteEnrollment(_GalleryOp):
    op: Literal["delete_enrollment"] = "delete_enrollment"
    enrollment_id: int


class NameVisitor(_GalleryOp):
    """Enroll an unknown visitor's archived faces as `label`, so that person is named from now on."""

    op: Literal["name_visitor"] = "name_visitor"
    visitor: int
    label: Label


class DismissVisitor(_GalleryOp):
    """Forget an unknown visitor (a grouping of no interest, or of several people): its faces stay in
    their events, no longer grouped; whoever comes back is grouped afresh."""

    op: Literal["dismiss_visitor"] = "dismiss_visitor"
    visitor: int


class MergeLabels(_GalleryOp):
    """Join `label` into `into` (both enrolled): one person enrolled under two names."""

    op: Literal["merge_labels"] = "merge_labels"
    label: Label
    into: Label


class NotLabel(_GalleryOp):
    """ "Not X": a face wrongly named `label`, kept as a negative example so that face is not named it again.

    The face is an archived one (`event_id`, `seq`, `face`: its index in the result's `faces`; `label`
    defaults to the name it was given there), or the largest face of a photo (`image_b64`, with `label`).
    """

    op: Literal["not_label"] = "not_label"
    label: Label | None = None
    event_id: str | None = None
    seq: int | None = Field(default=None, ge=0)
    face: int | None = Field(default=None, ge=0)
    image_b64: str | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _one_face(self) -> NotLabel:
        archived = (self.event_id, self.seq, self.face)
        if self.image_b64 is None and None in archived:
            raise ValueError("needs 'event_id', 'seq' and 'face' (an archived face), or 'image_b64'")
        if self.image_b64 is not None and archived != (None, None, None):
            raise ValueError("give an archived face or 'image_b64', not both")
        if self.image_b64 is not None and self.label is None:
            raise ValueError("needs 'label': the name the face in the photo was wrongly given")
        if self.image_b64 is not None:
            _image_b64(self.image_b64)  # refused here, while the request is read
        return self

    @property
    def image(self) -> bytes | None:
        return None if self.image_b64 is None else _image_b64(self.image_b64)


class EnrollFace(_GalleryOp):
    """Enroll an archived face as `label`: the clean face of the snapshot an alert showed (`event_id`,
    `seq`, `face`: its index in the result's `faces`), never the alert's boxed photo. `force` as for
    training: enroll it even when it already matches another label."""

    op: Literal["enroll_face"] = "enroll_face"
    event_id: str
    seq: int = Field(ge=0)
    face: int = Field(ge=0)
    label: Label
    force: bool = False


class UndoNot(_GalleryOp):
    """Take back a "not X": forget negative `negative_id` (the one a `not_label` answer named), so that
    face may be named X again."""

    op: Literal["undo_not"] = "undo_not"
    negative_id: int = Field(ge=1, le=2**63 - 1)


# One JSON object on `recognizer/cmd/gallery`; `op` says which.
GalleryCommand = Annotated[
    ListLabels
    | DeleteLabel
    | RenameLabel
    | DeleteEnrollment
    | NameVisitor
    | DismissVisitor
    | MergeLabels
    | NotLabel
    | EnrollFace
    | UndoNot,
    Field(discriminator="op"),
]
_GALLERY_COMMAND: TypeAdapter[GalleryCommand] = TypeAdapter(GalleryCommand)


def parse_gallery_command(
    raw: bytes | str | Mapping[str, Any], correlation_id: str | None = None
) -> GalleryCommand:
    """Decode a gallery command (JSON, or its fields); a missing field or unknown op says which.

    The MQTT v5 correlation data, when given, is the command's `request_id` (as for training and search),
    so the answer's body names the id the requester waits for.
    """
    data = dict(raw) if isinstance(raw, Mapping) else _json_object(raw)
    if correlation_id:
        data["request_id"] = correlation_id
    return _validated("GalleryCommand", _GALLERY_COMMAND.validate_python, data)


# ----------------------------------------------------------------------- requests with an image
#
# Training and search each come in two wire forms: a raw JPEG with its options in the `meta` user
# property (preferred: MQTT v5), or a JSON body with the image in base64 (MQTT 3.1.1 clients). The
# decoders below turn either into one request, so the recognizer (and any other adapter, e.g. HTTP)
# handles a single shape.


def request_id_from(correlation_id: str | None, body_id: str | None) -> str:
    """The id an answer carries: the MQTT v5 correlation data, else the request's own id, else a new one."""
    return correlation_id or body_id or new_id()


class TrainMeta(Payload):
    """Optional `meta` user property of a raw JPEG on `train/<label>`."""

    request_id: str = Field(default_factory=new_id)
    largest: bool = False  # several faces: enroll the largest instead of refusing
    force: bool = False  # enroll even when the face already matches another label
    source: str = "mqtt-raw"
    name: Label | None = None  # the display name to show (default: the label as given)


class TrainRequest(TrainMeta):
    """The JSON form, on `train`: the label in the body and the image in base64."""

    label: Label
    image_b64: str
    source: str = "mqtt"


class Training(BaseModel):
    """A training request, whichever form it came in."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    request_id: str
    label: Label
    image: bytes = Field(repr=False)
    largest: bool = False
    force: bool = False
    source: str = "mqtt"
    name: Label | None = None


def decode_train(
    topics: Topics,
    topic: str,
    payload: bytes,
    user_properties: Mapping[str, str],
    correlation_id: str | None,
) -> Training:
    """A JSON `TrainRequest` on `train`, or a JPEG on `train/<label>` (options in `meta`, if any)."""
    if topic == topics.train:
        req = parse(TrainRequest, payload)
        return Training(
            request_id=request_id_from(correlation_id, req.request_id),
            label=req.label,
            image=_image_b64(req.image_b64),
            largest=req.largest,
            force=req.force,
            source=req.source,
            name=req.name,
        )
    label = topics.label_from_train_raw(topic)
    if META_PROPERTY in user_properties:
        meta = parse_meta(TrainMeta, user_properties)
        body_id: str | None = meta.request_id
    else:
        meta, body_id = TrainMeta(), user_properties.get(REQUEST_ID_PROPERTY)
    return Training(
        request_id=request_id_from(correlation_id, body_id),
        label=label,
        image=payload,
        largest=meta.largest,
        force=meta.force,
        source=meta.source,
        name=meta.name,
    )


def training_request_id(label: str, image: bytes, *, largest: bool = False, force: bool = False) -> str:
    """A request id that is the same for the same training (label, photo, options): a client that
    sends it again after a timeout, even from a new process, is answered without a second enrollment."""
    digest = hashlib.sha256(f"{check_name(label)}\0{largest}\0{force}\0".encode())
    digest.update(image)
    return "train-" + digest.hexdigest()[:32]


class SearchMeta(Payload):
    """`meta` user property of a raw JPEG on `recognizer/cmd/search`."""

    request_id: str = Field(default_factory=new_id)
    threshold: float | None = None  # None: the recognizer's match_threshold
    top: int = Field(default=20, ge=1, le=1000)


class SearchRequest(SearchMeta):
    """The JSON form: the photo in base64, or an archived face (`event_id`, `seq`, `face`: its index in
    the result's `faces`), e.g. the clean face an alert showed boxed."""

    image_b64: str | None = Field(default=None, repr=False)
    event_id: str | None = None
    seq: int | None = Field(default=None, ge=0)
    face: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_face(self) -> SearchRequest:
        _one_query_face(self.image_b64 is not None, (self.event_id, self.seq, self.face))
        return self


class FaceSearch(BaseModel):
    """A search of the event archive for the largest face of `image`, or for an archived face
    (`event_id`, `seq`, `face`), whichever form it came in."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    request_id: str
    image: bytes | None = Field(default=None, repr=False)
    threshold: float | None = None
    top: int = Field(default=20, ge=1, le=1000)
    event_id: str | None = None
    seq: int | None = Field(default=None, ge=0)
    face: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_face(self) -> FaceSearch:
        _one_query_face(self.image is not None, (self.event_id, self.seq, self.face))
        return self


def _one_query_face(photo: bool, archived: tuple[str | None, int | None, int | None]) -> None:
    if not photo and None in archived:
        raise ValueError("needs 'image_b64' (a photo), or 'event_id', 'seq' and 'face' (an archived face)")
    if photo and archived != (None, None, None):
        raise ValueError("give a photo or an archived face, not both")


def decode_search(
    payload: bytes, user_properties: Mapping[str, str], correlation_id: str | None
) -> FaceSearch:
    """A JPEG with a `meta` user property, else a JSON `SearchRequest`."""
    if META_PROPERTY in user_properties:
        meta: SearchMeta = parse_meta(SearchMeta, user_properties)
        image = payload
    else:
        req = parse(SearchRequest, payload)
        if req.image_b64 is None:  # an archived face
            return FaceSearch(
                request_id=request_id_from(correlation_id, req.request_id),
                threshold=req.threshold,
                top=req.top,
                event_id=req.event_id,
                seq=req.seq,
                face=req.face,
            )
        meta, image = req, _image_b64(req.image_b64)
    return FaceSearch(
        request_id=request_id_from(correlation_id, meta.request_id),
        image=image,
        threshold=meta.threshold,
        top=meta.top,
    )


def _image_b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError("image_b64 is not valid base64") from None
