"""The state of the rest of the house as the recognizer's API shows it: which nodes are online, whether
the notifier is armed, which cameras are enabled and whether their video sources deliver; and the
commands that change them.

The notifier and the cameras own that state. The recognizer only follows their retained announcements
(fed in by `household_mqtt.watch_household`) and sends their owners the same commands as
`homesec arm` and `<prefix>/camera/<id>/cmd/enable`: a change shows here once its owner announces it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from homesec.contract import (
    ArmCommand,
    ArmedState,
    CameraEnabled,
    CameraState,
    EnableCommand,
    Role,
    node_name,
)

SendArm = Callable[[ArmCommand], bool]
SendEnable = Callable[[str, EnableCommand], bool]


class HouseholdState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nodes: dict[str, str] = Field(
        description="Each node that ever connected (`camera/door`): online, offline (vanished) or stopped."
    )
    armed: bool | None = Field(description="Whether alerts are sent; null until the notifier has said.")
    armed_by: str | None = Field(description="Who armed or disarmed it last (cli, telegram, http...).")
    cameras: dict[str, bool] = Field(description="Each camera that announced itself: enabled?")
    sources: dict[str, CameraState] = Field(
        default_factory=dict,
        description="Each camera's video source as it last said: online, offline or error, and why.",
    )


class CommandNotSent(RuntimeError):
    """The broker is away or refused the command."""


class UnknownCamera(LookupError):
    pass


class Household:
    """Thread-safe: fed on the bus worker thread, read and commanded from the API's threads."""

    def __init__(self) -> None:
        self._lock = threading.Condition()  # notified on every announcement: see `wait_for`
        self._nodes: dict[str, str] = {}
        self._armed: ArmedState | None = None
        self._cameras: dict[str, bool] = {}
        self._sources: dict[str, CameraState] = {}
        self._send_arm: SendArm | None = None
        self._send_enable: SendEnable | None = None

    def connect(self, send_arm: SendArm, send_enable: SendEnable) -> None:
        """Where the commands go (each returns whether the broker took it)."""
        self._send_arm, self._send_enable = send_arm, send_enable

    # -- what the owners announce
    def node_seen(self, node: str, availability: str) -> None:
        with self._lock:
            self._nodes[node] = availability
            self._lock.notify_all()

    def armed_seen(self, state: ArmedState) -> None:
        with self._lock:
            self._armed = state
            self._lock.notify_all()

    def camera_seen(self, state: CameraEnabled) -> None:
        with self._lock:
            self._cameras[state.camera] = state.enabled
            self._lock.notify_all()

    def source_seen(self, state: CameraState) -> None:
        with self._lock:
            self._sources[state.camera] = state
            self._lock.notify_all()

    # -- what the API asks
    def state(self) -> HouseholdState:
        with self._lock:
            armed = self._armed
            return HouseholdState(
                nodes=dict(self._nodes),
                armed=armed.armed if armed else None,
                armed_by=armed.by if armed else None,
                cameras=dict(self._cameras),
                sources=dict(self._sources),
            )

    def wait_for(self, done: Callable[[HouseholdState], bool], timeout: float) -> bool:
        """Whether the state came to satisfy `done` within `timeout` seconds (a command's owner
        announcing the change, so that a page can show it done rather than sent)."""
        with self._lock:  # a Condition's lock is reentrant: state() takes it again
            return self._lock.wait_for(lambda: done(self.state()), timeout)

    def set_armed(self, armed: bool, by: str) -> None:
        """Ask the notifier to arm or disarm (CommandNotSent when the broker did not take it)."""
        if self._send_arm is None or not self._send_arm(ArmCommand(armed=armed, by=by)):
            raise CommandNotSent("the broker did not take the arm command")

    def set_camera_enabled(self, camera: str, enabled: bool) -> None:
        """Ask a camera that announced itself to start or stop (UnknownCamera for any other)."""
        node = node_name(Role.CAMERA, camera)  # ContractError for a malformed id
        with self._lock:
            known = camera in self._cameras or node in self._nodes
        if not known:
            raise UnknownCamera(f"no camera {camera!r} has announced itself")
        if self._send_enable is None or not self._send_enable(camera, EnableCommand(enabled=enabled)):
            raise CommandNotSent(f"the broker did not take the enable command for camera {camera!r}")
