"""The camera's event machine on its own: gaps, cooldown, and what starts and keeps an event per trigger mode."""

from __future__ import annotations

import pytest

from camera_node.events import EventMachine, EventState, track_event
from camera_node.settings import CameraSettings


def test_event_gap_and_cooldown() -> None:
    s = EventState()
    s, edge = track_event(s, True, 0.0, gap_s=2.0)
    assert edge == "start" and s.in_event
    s, edge = track_event(s, False, 1.0, gap_s=2.0)
    assert edge is None and s.in_event
    s, edge = track_event(s, True, 1.5, gap_s=2.0)  # activity inside the gap extends the event
    s, edge = track_event(s, False, 3.4, gap_s=2.0)
    assert edge is None
    s, edge = track_event(s, False, 3.5, gap_s=2.0)
    assert edge == "end" and not s.in_event and s.ended_at == 3.5
    s2, edge = track_event(s, True, 5.0, gap_s=2.0, cooldown_s=5.0)
    assert edge is None and not s2.in_event  # still cooling down
    s3, edge = track_event(s, True, 8.5, gap_s=2.0, cooldown_s=5.0)
    assert edge == "start" and s3.in_event


def run(machine: EventMachine, frames: list[tuple[float, bool, bool]]) -> list[str | None]:
    """Edges for (time, frame motion, PIR) per frame."""
    return [machine.step(t, motion=m, pir=p) for t, m, p in frames]


def test_motion_mode_follows_frame_motion_and_ignores_the_pir() -> None:
    machine = EventMachine("motion", gap_s=1.0)
    edges = run(machine, [(0.0, False, True), (0.1, True, False), (0.6, False, True), (1.1, False, False)])
    assert edges == [None, "start", None, "end"]


def test_pir_mode_follows_the_sensor_and_ignores_frame_motion() -> None:
    machine = EventMachine("pir", gap_s=1.0)
    edges = run(machine, [(0.0, True, False), (0.1, False, True), (0.6, True, False), (1.1, True, False)])
    assert edges == [None, "start", None, "end"]


def test_pir_plus_motion_needs_frame_motion_within_the_confirm_window() -> None:
    machine = EventMachine("pir+motion", gap_s=1.0, confirm_window_s=1.0)
    assert run(machine, [(0.0, True, False), (0.1, True, False)]) == [None, None]  # motion alone: nothing
    assert run(machine, [(1.0, False, True), (1.5, False, False)]) == [None, None]  # the PIR alone: armed
    assert run(machine, [(2.0, True, False)]) == ["start"]  # motion 1 s after the PIR confirms it
    # once started, either one keeps it going; the gap after the last of them ends it
    assert run(machine, [(2.8, False, True), (3.6, True, False), (4.7, False, False)]) == [None, None, "end"]


def test_pir_plus_motion_window_closes() -> None:
    machine = EventMachine("pir+motion", gap_s=1.0, confirm_window_s=1.0)
    assert run(machine, [(0.0, False, True), (1.01, True, False)]) == [None, None]
    assert not machine.in_event
    assert run(machine, [(2.0, True, True)]) == ["start"]  # both at once: armed and confirmed


def test_manual_mode_never_starts_an_event() -> None:
    machine = EventMachine("manual", gap_s=1.0)
    assert run(machine, [(0.0, True, True), (0.1, True, True)]) == [None, None]


def test_close_ends_an_open_event_and_starts_the_cooldown() -> None:
    machine = EventMachine("motion", gap_s=10.0, cooldown_s=5.0)
    assert not machine.close(0.0)  # nothing open
    assert machine.step(1.0, motion=True, pir=False) == "start"
    assert machine.close(2.0) and not machine.in_event
    assert machine.step(3.0, motion=True, pir=False) is None  # cooling down since the close
    assert machine.step(7.0, motion=True, pir=False) == "start"


@pytest.mark.parametrize("trigger", ["motion", "pir", "pir+motion", "manual"])
def test_from_settings(trigger: str) -> None:
    s = CameraSettings.model_validate(
        {
            "trigger": trigger,
            "motion": {"event_gap_s": 2.5},
            "cooldown_s": 4,
            "pir": {"confirm_window_s": 1.5},
        }
    )
    machine = EventMachine.from_settings(s)
    assert (machine.trigger, machine.gap_s, machine.cooldown_s, machine.confirm_window_s) == (
        trigger,
        2.5,
        4.0,
        1.5,
    )
