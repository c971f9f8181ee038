"""When a motion event starts and ends: one state machine, fed once per frame by the camera service.

It judges nothing itself: the frame's verdict comes from `MotionDetector` and the PIR's from the sensor;
this decides, per trigger mode, whether they keep an event going, and applies the gap that ends it and
the cooldown before the next. Pure and clock-free: the caller passes the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from camera_node.settings import CameraSettings, TriggerMode

EventEdge = Literal["start", "end"]


@dataclass(frozen=True)
class EventState:
    in_event: bool = False
    last_active: float = -math.inf
    ended_at: float = -math.inf


def track_event(
    state: EventState, active: bool, now: float, gap_s: float, cooldown_s: float = 0.0
) -> tuple[EventState, EventEdge | None]:
    """One step: activity starts an event (unless cooling down after the last one); `gap_s` without
    activity ends it."""
    if active:
        if state.in_event:
            return replace(state, last_active=now), None
        if now - state.ended_at >= cooldown_s:
            return EventState(True, now, state.ended_at), "start"
        return state, None
    if state.in_event and now - state.last_active >= gap_s:
        return EventState(False, state.last_active, now), "end"
    return state, None


class EventMachine:
    """Events per trigger mode. 'motion' follows frame motion and 'pir' the sensor; in 'pir+motion' the
    PIR arms and frame motion within `confirm_window_s` starts the event, which then lasts while either
    sees activity; 'manual' has none (each capture command is its own event, run by the service)."""

    def __init__(
        self, trigger: TriggerMode, gap_s: float, cooldown_s: float = 0.0, confirm_window_s: float = 0.0
    ) -> None:
        self.trigger, self.gap_s, self.cooldown_s = trigger, gap_s, cooldown_s
        self.confirm_window_s = confirm_window_s
        self.state = EventState()
        self._armed_until = -math.inf

    @classmethod
    def from_settings(cls, s: CameraSettings) -> EventMachine:
        return cls(s.trigger, s.motion.event_gap_s, s.cooldown_s, s.pir.confirm_window_s)

    @property
    def in_event(self) -> bool:
        return self.state.in_event

    def step(self, now: float, *, motion: bool, pir: bool) -> EventEdge | None:
        """One frame: `motion` is the detector's verdict, `pir` whether the sensor saw someone since
        the last frame. Returns the edge this frame makes, if any."""
        self.state, edge = track_event(
            self.state, self._active(now, motion, pir), now, self.gap_s, self.cooldown_s
        )
        return edge

    def close(self, now: float) -> bool:
        """End the open event at once (camera disabled, node stopping); False when none was open."""
        if not self.state.in_event:
            return False
        self.state = EventState(False, self.state.last_active, now)
        return True

    def _active(self, now: float, motion: bool, pir: bool) -> bool:
        if self.trigger == "motion":
            return motion
        if self.trigger == "pir":
            return pir
        if self.trigger == "pir+motion":
            if pir:
                self._armed_until = now + self.confirm_window_s
            confirmed = motion and now <= self._armed_until
            return confirmed or (self.state.in_event and (motion or pir))
        return False
