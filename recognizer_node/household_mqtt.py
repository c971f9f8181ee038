"""The household state over MQTT: the retained announcements feed it, its commands go to their owners."""

from __future__ import annotations

from homesec.bus import Bus, Message
from homesec.contract import ArmedState, CameraEnabled, CameraState, parse
from recognizer_node.captures import Captures
from recognizer_node.household import Household


def watch_household(bus: Bus, household: Household) -> None:
    """Follow every node's availability, the armed state, each camera's enabled state and its video
    source's state (retained, so the current ones arrive at once), and send the arm and enable commands through `bus`."""
    t = bus.topics

    def on_available(msg: Message) -> None:
        household.node_seen(t.node_from_available(msg.topic), msg.payload.decode(errors="replace").strip())

    bus.subscribe(t.all_available, on_available)
    bus.subscribe(t.armed, lambda msg: household.armed_seen(parse(ArmedState, msg.payload)))
    bus.subscribe(t.camera_enabled("+"), lambda msg: household.camera_seen(parse(CameraEnabled, msg.payload)))
    bus.subscribe(t.camera_state("+"), lambda msg: household.source_seen(parse(CameraState, msg.payload)))
    household.connect(
        lambda cmd: bus.publish_confirmed(t.armed_cmd, cmd),
        lambda camera, cmd: bus.publish_confirmed(t.camera_cmd_enable(camera), cmd),
    )


def send_captures(bus: Bus, captures: Captures) -> None:
    """The capture commands of the HTTP API (the web page's button) go to the camera through `bus`."""
    captures.connect(lambda camera, cmd: bus.publish_confirmed(bus.topics.camera_cmd_capture(camera), cmd))
