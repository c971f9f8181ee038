"""Asking a camera for a photo now: the web page's capture button (`POST /api/cameras/{camera}/capture`),
as `homesec capture` and the bot's /snapshot do. The camera owns the capture; this only sends the command
(`household_mqtt.send_captures` connects it to the bus) to a camera the household has seen."""

from __future__ import annotations

from collections.abc import Callable

from homesec.contract import CaptureCommand, Role, node_name
from recognizer_node.household import CommandNotSent, Household, UnknownCamera

SendCapture = Callable[[str, CaptureCommand], bool]


class Captures:
    def __init__(self, household: Household) -> None:
        self.household = household
        self._send: SendCapture | None = None

    def connect(self, send: SendCapture) -> None:
        """Where the commands go (`send` returns whether the broker took it)."""
        self._send = send

    def capture(self, camera: str, burst: int | None = None) -> CaptureCommand:
        """Send a capture command to a camera that announced itself (UnknownCamera for any other,
        CommandNotSent when the broker did not take it); the command sent."""
        node = node_name(Role.CAMERA, camera)  # ContractError for a malformed id
        state = self.household.state()
        if camera not in state.cameras and node not in state.nodes:
            raise UnknownCamera(f"no camera {camera!r} has announced itself")
        cmd = CaptureCommand(burst=burst)
        if self._send is None or not self._send(camera, cmd):
            raise CommandNotSent(f"the broker did not take the capture command for camera {camera!r}")
        return cmd
