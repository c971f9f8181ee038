"""The camera node as the core sees it: its section, its name on the bus, its demo scene."""

from __future__ import annotations

from pathlib import Path

from camera_node.settings import CameraSettings
from homesec import contract
from homesec.contract import Role
from homesec.plugins import NodePlugin

DEMO_SCENE = Path(__file__).resolve().parent.parent / "demo" / "camera"


def node_name(settings: CameraSettings) -> str:
    return contract.node_name(Role.CAMERA, settings.id)


def up_env(settings: CameraSettings, demo_dir: Path | None, env: dict[str, str]) -> None:
    """Under `homesec up`: replay `demo_dir`, or the demo scene unless the camera has a source of its own."""
    if demo_dir is not None:
        env["HOMESEC_CAMERA__REPLAY__DIR"] = str(demo_dir.resolve())
    elif settings.source == "replay" and settings.replay.dir is None:
        # The demo scene: 5 frames/s, a visitor every ~8 s; short gaps so each visitor is one event.
        env["HOMESEC_CAMERA__REPLAY__DIR"] = str(DEMO_SCENE)
        env.setdefault("HOMESEC_CAMERA__REPLAY__FPS", "5")
        env.setdefault("HOMESEC_CAMERA__MOTION__EVENT_GAP_S", "1.5")
        env.setdefault("HOMESEC_CAMERA__COOLDOWN_S", "2")


PLUGIN = NodePlugin(
    settings=CameraSettings,
    role=Role.CAMERA,
    stage=0,
    node_name=node_name,
    up_env=up_env,
    array="cameras",
)
