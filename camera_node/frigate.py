"""Frigate as a camera's source: its person events become homesec snapshots.

Frigate publishes `<topic_prefix>/events` on its own MQTT broker (`{"type": "new"|"update"|"end",
"before": {...}, "after": {"id", "camera", "label", "top_score", "false_positive", "has_snapshot",
...}}`, docs.frigate.video/integrations/mqtt). For each tracked object whose label counts (person), of
the Frigate camera asked for, the first message with a snapshot fetches it from Frigate's HTTP API
(`/api/events/<id>/snapshot.jpg`, without the box Frigate can draw) and hands it to the camera service
as a one-snapshot event: it then goes to the recognizer like any snapshot (spool, confirmation).

Frigate's broker is a separate connection, read-only (it subscribes to the events topic only): homesec's
own broker and its ACLs stay as they are, and Frigate never learns homesec's credentials.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from camera_node.credentials import Credentials, load_credentials, mask, read_password
from camera_node.settings import CameraSettings, FrigateSettings
from camera_node.sources import Frame, Size, WantMain
from camera_node.streams import IDLE_S, HttpStatus, SourceStatus, StateCallback, http_auth, reason_of

log = logging.getLogger(__name__)

SnapshotCallback = Callable[[bytes, str | None, Any], None]
_REMEMBERED = 1000  # event ids kept, so an event's later updates do not fetch it again
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


@dataclass(frozen=True)
class FrigateEvent:
    """What homesec needs of one `frigate/events` message (its `after` state)."""

    kind: str  # new, update, end
    id: str
    camera: str
    label: str
    has_snapshot: bool
    false_positive: bool
    top_score: float

    @property
    def event_id(self) -> str:
        """A homesec event id (a file name too): Frigate's `1607123955.475377-mxklsc` made safe."""
        return ("frigate-" + _UNSAFE.sub("_", self.id))[:64]


def parse_event(payload: bytes) -> FrigateEvent | None:
    """The event in a `frigate/events` message, or None when it is not one (logged by the caller)."""
    try:
        body = json.loads(payload)
        after = body["after"]
        return FrigateEvent(
            kind=str(body.get("type", "")),
            id=str(after["id"]),
            camera=str(after.get("camera", "")),
            label=str(after.get("label", "")),
            has_snapshot=bool(after.get("has_snapshot", True)),
            false_positive=bool(after.get("false_positive", False)),
            top_score=float(after.get("top_score") or after.get("score") or 0.0),
        )
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Capture:
    """A capture command for a Frigate camera: its latest picture, as this event."""

    event_id: str


class EventFilter:
    """Which events to fetch: label, Frigate camera, score; each tracked object once."""

    def __init__(self, settings: FrigateSettings) -> None:
        self.settings = settings
        self._seen: OrderedDict[str, None] = OrderedDict()

    def wanted(self, event: FrigateEvent) -> bool:
        s = self.settings
        if event.label not in s.labels or (s.camera is not None and event.camera != s.camera):
            return False
        if event.false_positive or not event.has_snapshot or event.top_score < s.min_score:
            return False
        if event.id in self._seen:
            return False
        self._seen[event.id] = None
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        return True


class FrigateSource:
    """A FrameSource with no frames: Frigate's events arrive through `on_snapshot` instead."""

    live = True

    def __init__(
        self,
        camera: str,
        api_url: str,
        settings: FrigateSettings,
        *,
        creds: Credentials,
        auth: Literal["basic", "digest"] = "digest",
        broker_password: str | None,
        lores_size: Size = (320, 240),
        timeout_s: float = 10.0,
        on_state: StateCallback | None = None,
    ) -> None:
        self.camera, self.api_url, self.settings = camera, api_url.rstrip("/"), settings
        self.lores_size, self.on_state = lores_size, on_state
        self.on_snapshot: SnapshotCallback | None = None
        self._creds, self._auth, self._broker_password = creds, auth, broker_password
        self._timeout_s = timeout_s
        self._filter = EventFilter(settings)
        self._events: queue.Queue[FrigateEvent | Capture | None] = queue.Queue()
        self._stopped = threading.Event()
        self._client: Any = None
        self._worker: threading.Thread | None = None
        self._state: tuple[SourceStatus, str | None] = ("offline", "starting")

    @classmethod
    def from_settings(
        cls, settings: CameraSettings, data_dir: Path | None, on_state: StateCallback | None
    ) -> FrigateSource:
        f = settings.frigate
        default = data_dir / "secrets" / f"frigate-{settings.id}.password" if data_dir else None
        assert settings.url is not None  # the settings refuse source = 'frigate' without one
        return cls(
            settings.id,
            settings.url,
            f,
            creds=load_credentials(settings, data_dir),
            auth=settings.auth,
            broker_password=read_password(f.password_file, default, "camera.frigate.password_file"),
            lores_size=settings.lores,
            timeout_s=settings.timeout_s,
            on_state=on_state,
        )

    @property
    def events_topic(self) -> str:
        return f"{self.settings.topic_prefix}/events"

    # -- FrameSource
    def start(self) -> None:
        self._stopped.clear()
        self._report("offline", "starting")
        self._worker = threading.Thread(target=self._fetch_loop, name=f"frigate-{self.camera}", daemon=True)
        self._worker.start()
        self._client = self._connect()

    def stop(self) -> None:
        self._stopped.set()
        self._events.put(None)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self._worker is not None:
            self._worker.join(timeout=15)

    def read(self, want_main: WantMain = False) -> Frame | None:
        self._stopped.wait(IDLE_S)
        return None

    def capture(self, event_id: str) -> None:
        """A capture command: the Frigate camera's latest picture (`/api/<camera>/latest.jpg`)."""
        if self.settings.camera is None:
            raise ValueError("capture needs camera.frigate.camera: which Frigate camera's picture to take")
        self._events.put(Capture(event_id))

    # -- Frigate's broker (paho's thread)
    def _connect(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        # A clean session of its own: a client id no homesec node uses, even on a shared broker.
        client_id = f"homesec-frigate-{self.camera}-{secrets.token_hex(4)}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if self.settings.username:
            client.username_pw_set(self.settings.username, self._broker_password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = lambda *_: self._report("offline", "Frigate's broker is unreachable")
        client.reconnect_delay_set(1, 30)
        client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        client.loop_start()
        return client

    def _on_connect(self, client: Any, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        if rc.is_failure:
            self._report("error", f"Frigate's broker refused the connection: {rc}")
            return
        client.subscribe(self.events_topic, qos=1)
        log.info("camera %s: Frigate events from %s:%s", self.camera, self.settings.host, self.settings.port)
        self._report("online", None)

    def _on_disconnect(self, _c: Any, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        if not self._stopped.is_set() and self._state[0] != "error":  # a refused login stays an error
            self._report("offline", "Frigate's broker is unreachable")

    def _on_message(self, _c: Any, _u: object, msg: Any) -> None:
        event = parse_event(msg.payload)
        if event is None:
            log.warning("camera %s: not a Frigate event on %s (ignored)", self.camera, msg.topic)
            return
        if self._filter.wanted(event):
            self._events.put(event)

    # -- Frigate's HTTP API (own thread: a slow fetch never holds up paho)
    def _fetch_loop(self) -> None:
        import httpx

        # A proxy in front of Frigate's authenticated port may ask for basic or digest: camera.auth
        # applies as for a snapshot URL.
        with httpx.Client(auth=http_auth(self._creds, self._auth), timeout=self._timeout_s) as http:
            while (item := self._events.get()) is not None:
                if isinstance(item, Capture):
                    url = f"{self.api_url}/api/{self.settings.camera}/latest.jpg"
                    self._fetch(http, url, item.event_id, "manual")
                else:
                    log.info(
                        "camera %s: Frigate %s event %s on %s", self.camera, item.label, item.id, item.camera
                    )
                    url = f"{self.api_url}/api/events/{item.id}/snapshot.jpg"
                    self._fetch(http, url, item.event_id, "frigate")

    def _fetch(self, http: Any, url: str, event_id: str, trigger: str) -> None:
        try:
            response = http.get(url, params={"bbox": 0, "timestamp": 0, "crop": 0})
            if response.status_code != 200:
                raise HttpStatus(response.status_code, response.reason_phrase)
            jpeg = response.content
        except Exception as exc:
            state, reason = reason_of(exc)
            log.warning("camera %s: Frigate picture %s: %s", self.camera, mask(url), reason)
            if state == "error":
                self._report("error", f"Frigate's API: {reason}")
            return
        if self._state[0] == "error" and self._client is not None and self._client.is_connected():
            self._report("online", None)  # the API answers again
        if self.on_snapshot is not None:
            try:
                self.on_snapshot(jpeg, event_id, trigger)
            except Exception as exc:  # not a JPEG, or the spool refused it: this picture only
                log.warning("camera %s: Frigate picture %s refused: %s", self.camera, mask(url), exc)

    def _report(self, state: SourceStatus, reason: str | None) -> None:
        if (state, reason) == self._state:
            return
        self._state = (state, reason)
        if self.on_state is not None:
            self.on_state(state, reason)
