"""The frame loop that turns detector verdicts and PIR edges into events and bursts, and the commands.

Threads: the frame loop (read, detect, step the event machine, take burst frames), the snapshot sender
(encode, spool, publish until the result is seen), gpiozero's own thread for the PIR callback, and the
bus worker for commands and results. Commands only enqueue work; the frame loop owns all event state.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camera_node.events import EventEdge, EventMachine
from camera_node.motion import Box, MotionDetector, MotionParams, build_active, to_full_resolution
from camera_node.pir import make_pir
from camera_node.sender import Snapshot, SnapshotSender
from camera_node.settings import CameraSettings, TriggerMode
from camera_node.sources import Frame, FrameSource, make_source
from homesec.bus import Bus, Message
from homesec.contract import (
    FILE_SAFE_ID_RE,
    META_PROPERTY,
    CameraEnabled,
    CameraState,
    CaptureCommand,
    ContractError,
    EnableCommand,
    MotionEvent,
    ShowCommand,
    SnapshotMeta,
    Trigger,
    new_id,
    parse,
    parse_meta,
)
from homesec.files import write_atomic
from homesec.settings import mb_to_bytes
from homesec.spool import DiskSpool

log = logging.getLogger(__name__)

BOX_MAX_AGE_S = 2.0  # a motion box older than this no longer describes the snapshot


@dataclass
class Burst:
    event_id: str
    trigger: TriggerMode
    count: int
    next_at: float
    seq: int = 0
    manual: bool = False


class CameraService:
    def __init__(
        self,
        settings: CameraSettings,
        data_dir: Path,
        bus: Bus,
        *,
        source: FrameSource | None = None,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        s = self.settings = settings
        self.bus, self.camera, self._clock = bus, s.id, clock
        self.topics = bus.topics
        self._state = CameraState(camera=s.id, state="online")  # replay, picamera2: frames or a crash
        self._state_lock = threading.Lock()
        self._stopped = False
        self.source = source or make_source(s, data_dir, self._on_source_state)
        if hasattr(self.source, "on_snapshot"):  # Frigate: snapshots come from its events, not frames
            self.source.on_snapshot = self.capture_image
        if getattr(self.source, "live", False):
            self._state = CameraState(camera=s.id, state="offline", reason="starting")
        self.detector = (
            MotionDetector(MotionParams.from_settings(s.motion), build_active(s.motion, s.lores))
            if s.trigger != "manual"
            else None
        )
        self.state_file = data_dir / f"camera-{s.id}.state.json"
        self.enabled = self._load_enabled()
        spool = DiskSpool(
            data_dir / "spool" / f"camera-{s.id}", s.spool.max_items, mb_to_bytes(s.spool.max_mb)
        )
        self.sender = SnapshotSender(
            bus,
            self.topics.snapshot(s.id),
            spool,
            result_topic=self.topics.result(s.id),
            jpeg_quality=s.burst.jpeg_quality,
            timeout_s=s.publish_timeout_s,
            confirm_timeout_s=s.confirm_timeout_s,
            max_in_flight=s.max_in_flight,
            max_attempts=s.max_attempts,
        )
        self.pir: Any = None
        self._pin_factory = pin_factory
        self._pir_rose = threading.Event()
        self._commands: queue.Queue[CaptureCommand | EnableCommand] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events = EventMachine.from_settings(s)
        self._event_id: str | None = None
        self._bursts: deque[Burst] = deque()
        self._last_box: tuple[Box, float] | None = None
        self._was_connected = False

    # -- lifecycle
    def start(self) -> None:
        self.bus.subscribe(self.topics.camera_cmd_capture(self.camera), self._on_capture)
        self.bus.subscribe(self.topics.camera_cmd_enable(self.camera), self._on_enable)
        self.bus.subscribe(self.topics.camera_cmd_show(self.camera), self._on_show)
        self.bus.on_connected(self._publish_state)  # retained, but a broker may have lost it
        if self.settings.trigger in ("pir", "pir+motion"):
            self.pir = make_pir(self.settings, self._pir_rose.set, self._pin_factory)
        self.source.start()
        self.sender.start()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera}", daemon=True)
        self._thread.start()
        state = "enabled" if self.enabled else "disabled"
        log.info(
            "camera %s: trigger %s, source %s, %s",
            self.camera,
            self.settings.trigger,
            self.settings.source,
            state,
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)  # the loop returns within one frame
        self.source.stop()
        if self.pir is not None:
            self.pir.close()
        self.sender.stop()
        self._publish_stopped()

    def _publish_stopped(self) -> None:
        """A clean stop leaves `offline` (stopped) retained, not the last `online`: a page or Home
        Assistant reading it would show a stopped camera's video as live. Sent before the bus's
        `available = stopped`, on the same connection, so they arrive in that order."""
        with self._state_lock:
            self._stopped = True  # a source thread still winding down must not overwrite it
            self._state = CameraState(camera=self.camera, state="offline", reason="stopped")
        if self.bus.connected:
            self.bus.publish(self.topics.camera_state(self.camera), self._state, retain=True)

    # -- enabled state
    def _load_enabled(self) -> bool:
        try:
            return bool(json.loads(self.state_file.read_text())["enabled"])
        except FileNotFoundError:
            return self.settings.enabled
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "unreadable %s (%s): using camera.enabled = %s", self.state_file, exc, self.settings.enabled
            )
            return self.settings.enabled

    def _publish_enabled(self) -> None:
        state = CameraEnabled(camera=self.camera, enabled=self.enabled)
        self.bus.publish(self.topics.camera_enabled(self.camera), state, retain=True)

    # -- the source's state (its reader threads call this on every change)
    def _on_source_state(self, state: str, reason: str | None) -> None:
        with self._state_lock:
            if self._stopped:
                return
            self._state = CameraState.model_validate(
                {"camera": self.camera, "state": state, "reason": reason}
            )
        log.info("camera %s: source %s%s", self.camera, state, f" ({reason})" if reason else "")
        self._publish_state()

    def _publish_state(self) -> None:
        if not self.bus.connected:
            return  # published on connection
        with self._state_lock:
            state = self._state
        self.bus.publish(self.topics.camera_state(self.camera), state, retain=True)

    @property
    def state(self) -> CameraState:
        return self._state

    # -- command handlers (bus worker thread): validate, then hand over to the frame loop
    def _on_enable(self, msg: Message) -> None:
        cmd = parse(EnableCommand, msg.payload)
        self.enabled = cmd.enabled
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state_file, json.dumps({"enabled": cmd.enabled}).encode())
        self._publish_enabled()
        self._commands.put(cmd)
        log.info("camera %s %s over MQTT", self.camera, "enabled" if cmd.enabled else "disabled")

    def _on_capture(self, msg: Message) -> None:
        cmd = parse(CaptureCommand, msg.payload)
        if not self.enabled:
            self.bus.report_error("camera_disabled", "capture refused: the camera is disabled", msg.topic)
            return
        capture = getattr(self.source, "capture", None)
        if capture is not None:  # a source without frames (Frigate) takes the picture itself
            try:
                capture(cmd.request_id if FILE_SAFE_ID_RE.match(cmd.request_id) else new_id())
            except ValueError as exc:
                self.bus.report_error("capture_unsupported", str(exc), msg.topic)
            return
        self._commands.put(cmd)

    def _on_show(self, msg: Message) -> None:
        """A photo shown to the camera: a capture of its own, through the usual spool and confirmation."""
        cmd = parse_meta(ShowCommand, msg.user_properties) if META_PROPERTY in msg.user_properties else None
        if msg.payload[:2] != b"\xff\xd8":
            raise ContractError("cmd/show carries a JPEG (it starts with FF D8)")
        if not self.enabled:
            self.bus.report_error("camera_disabled", "show refused: the camera is disabled", msg.topic)
            return
        self.capture_image(msg.payload, cmd.request_id if cmd else None, "manual")

    def capture_image(self, jpeg: bytes, event_id: str | None, trigger: Trigger) -> None:
        """One snapshot of a JPEG from outside the frame loop (a shown photo, a Frigate event): an event
        of its own, spooled and published like a burst of one."""
        if not self.enabled:
            log.info("camera %s disabled: %s snapshot dropped", self.camera, trigger)
            return
        width, height = jpeg_size(jpeg)
        event_id = event_id if event_id and FILE_SAFE_ID_RE.match(event_id) else new_id()
        meta = SnapshotMeta(
            camera=self.camera,
            event_id=event_id,
            seq=0,
            burst=1,
            trigger=trigger,
            width=width,
            height=height,
        )
        self._publish_motion(event_id, "start", trigger, None)
        self.sender.submit(Snapshot(jpeg, meta))
        self._publish_motion(event_id, "end", trigger, None)

    # -- the frame loop
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if not self._tick():
                        break
                except Exception:  # a camera hiccup must not end the node
                    log.exception("camera %s: frame loop error; retrying", self.camera)
                    self._stop.wait(1.0)
        finally:
            self._end_event(self._clock())

    def _tick(self) -> bool:
        now = self._clock()
        connected = self.bus.connected
        if connected and not self._was_connected:
            self._publish_enabled()  # on start and after every reconnect: the retained state stays true
        self._was_connected = connected
        self._handle_commands(now)
        # Asked when the frame arrives: a burst shot due by then, or a PIR edge during the wait (which
        # will probably start an event on this very frame), gets this frame's full image.
        frame = self.source.read(want_main=self._main_wanted)
        if frame is None:
            # A live source had no frame for a while (its stream is down and being reopened): go on,
            # and let time pass for the event machine, so an event open when the stream dropped ends
            # after its gap instead of lasting the whole outage.
            if not getattr(self.source, "live", False):
                return False
            self._step_events(self._clock(), motion=False, score=None)
            return True
        self._on_frame(frame, self._clock())
        return True

    def _main_wanted(self) -> bool:
        due = bool(self._bursts) and self._clock() >= self._bursts[0].next_at
        return due or self._pir_rose.is_set()

    def _handle_commands(self, now: float) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            if isinstance(cmd, EnableCommand):
                if not cmd.enabled:  # privacy: drop what was not taken yet, close what was open
                    for burst in self._bursts:
                        if burst.manual:
                            self._publish_motion(burst.event_id, "end", "manual", None)
                    self._bursts.clear()
                    self._end_event(now)
                    if self.detector is not None:
                        self.detector.reset()
            elif self.enabled:
                event_id = cmd.request_id if FILE_SAFE_ID_RE.match(cmd.request_id) else new_id()
                count = cmd.burst or self.settings.burst.count
                self._publish_motion(event_id, "start", "manual", None)
                self._bursts.append(Burst(event_id, "manual", count, now, manual=True))

    def _on_frame(self, frame: Frame, now: float) -> None:
        motion, score = self._detect(frame, now)
        self._step_events(now, motion=motion, score=score)
        if frame.main is not None and self._bursts:
            self._take_snapshot(frame, now)

    def _step_events(self, now: float, *, motion: bool, score: float | None) -> None:
        pir = self._pir_seen() and self.enabled
        edge = self._events.step(now, motion=motion, pir=pir)
        if edge == "start":
            self._start_event(now, score)
        elif edge == "end":
            self._end_event(now)

    def _detect(self, frame: Frame, now: float) -> tuple[bool, float | None]:
        """The detector's verdict on this frame (motion, changed fraction); keeps the latest box."""
        if self.detector is None or not self.enabled:
            return False, None
        result = self.detector.update(frame.lores_y)
        if result.box is not None:
            self._last_box = (to_full_resolution(result.box, self.source.lores_size, frame.size), now)
        return result.motion, result.analysis.fraction if result.analysis else None

    def _pir_seen(self) -> bool:
        """Whether the PIR saw someone since the last frame: a rising edge, or still high."""
        rose = self._pir_rose.is_set()
        self._pir_rose.clear()
        return rose or (self.pir is not None and bool(self.pir.motion_detected))

    def _start_event(self, now: float, score: float | None) -> None:
        self._event_id = new_id()
        trigger = self.settings.trigger
        self._publish_motion(self._event_id, "start", trigger, score)
        self._bursts.append(Burst(self._event_id, trigger, self.settings.burst.count, now))

    def _end_event(self, now: float) -> None:
        """Publish the end of the open event, if any: ended by its gap, or closed early."""
        self._events.close(now)
        if self._event_id is not None:
            self._publish_motion(self._event_id, "end", self.settings.trigger, None)
        self._event_id = None

    def _publish_motion(self, event_id: str, state: EventEdge, trigger: Trigger, score: float | None) -> None:
        event = MotionEvent(camera=self.camera, event_id=event_id, state=state, trigger=trigger, score=score)
        self.bus.publish(self.topics.motion(self.camera), event)
        log.info("camera %s: motion %s (%s) event %s", self.camera, state, trigger, event_id)

    def _take_snapshot(self, frame: Frame, now: float) -> None:
        burst = self._bursts[0]
        assert frame.main is not None
        box = self._last_box[0] if self._last_box and now - self._last_box[1] <= BOX_MAX_AGE_S else None
        meta = SnapshotMeta(
            camera=self.camera,
            event_id=burst.event_id,
            seq=burst.seq,
            burst=burst.count,
            trigger=burst.trigger,
            width=frame.size[0],
            height=frame.size[1],
            motion_box=None if burst.manual else box,
        )
        self.sender.submit(Snapshot(frame.main, meta))
        burst.seq += 1
        burst.next_at = now + self.settings.burst.interval_s
        if burst.seq >= burst.count:
            self._bursts.popleft()
            if burst.manual:
                self._publish_motion(burst.event_id, "end", "manual", None)


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG, or ContractError when it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            if img.format != "JPEG":
                raise ContractError(f"not a JPEG but {img.format}")
            return img.size
    except (UnidentifiedImageError, OSError):
        raise ContractError("not a JPEG (unreadable image)") from None
