"""`homesec-camera` / `python -m camera_node`: run the camera node until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from camera_node.service import CameraService
from homesec.bus import Bus
from homesec.config import Config
from homesec.contract import Role
from homesec.runner import run_node

log = logging.getLogger(__name__)


def node_name(config: Config) -> str:
    return f"camera/{config.camera.id}"


def pulse_mock_pir(service: CameraService, seconds: float = 0.5) -> None:
    """Drive gpiozero's mock PIR pin high, then low: someone walks past a camera in another process."""
    if service.pir is None:
        log.warning("SIGUSR1: no PIR in trigger mode %r", service.settings.trigger)
        return
    service.pir.pin.drive_high()
    time.sleep(seconds)
    service.pir.pin.drive_low()


def build_service(config: Config, bus: Bus) -> CameraService:
    service = CameraService(config, bus)
    if (
        os.environ.get("GPIOZERO_PIN_FACTORY") == "mock"
        and threading.current_thread() is threading.main_thread()
    ):
        # With the mock pin factory (demos, end-to-end tests), `kill -USR1 <pid>` plays the PIR sensor.
        signal.signal(
            signal.SIGUSR1, lambda *_: threading.Thread(target=pulse_mock_pir, args=(service,)).start()
        )
    return service


def main(argv: list[str] | None = None) -> int:
    return run_node(Role.CAMERA, node_name, build_service, argv)


if __name__ == "__main__":
    sys.exit(main())
