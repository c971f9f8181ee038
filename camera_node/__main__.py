"""`homesec-camera` / `python -m camera_node`: run the camera node until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from camera_node.plugin import PLUGIN
from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from homesec.bus import Bus
from homesec.runner import run_node

log = logging.getLogger(__name__)


def pulse_mock_pir(service: CameraService, seconds: float = 0.5) -> None:
    """Drive gpiozero's mock PIR pin high, then low: someone walks past a camera in another process."""
    if service.pir is None:
        log.warning("SIGUSR1: no PIR in trigger mode %r", service.settings.trigger)
        return
    service.pir.pin.drive_high()
    time.sleep(seconds)
    service.pir.pin.drive_low()


def build_service(settings: CameraSettings, data_dir: Path, bus: Bus) -> CameraService:
    service = CameraService(settings, data_dir, bus)
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
    return run_node(PLUGIN, build_service, argv)


if __name__ == "__main__":
    sys.exit(main())
