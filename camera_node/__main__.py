"""`homesec-camera` / `python -m camera_node`: run the camera node until SIGTERM or Ctrl-C."""

from __future__ import annotations

import sys

from camera_node.service import CameraService
from homesec.bus import Bus
from homesec.config import Config
from homesec.contract import Role
from homesec.runner import run_node


def node_name(config: Config) -> str:
    return f"camera/{config.camera.id}"


def build_service(config: Config, bus: Bus) -> CameraService:
    return CameraService(config, bus)


def main(argv: list[str] | None = None) -> int:
    return run_node(Role.CAMERA, node_name, build_service, argv)


if __name__ == "__main__":
    sys.exit(main())
