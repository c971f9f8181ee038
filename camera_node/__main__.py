"""`homesec-camera` / `python -m camera_node`: run the node's cameras until SIGTERM or Ctrl-C.

One camera (`[camera]`) or several (`[[cameras]]`): each has its own broker account (`camera-<id>`),
so its own bus, availability and ACL, and its own service; a camera that cannot start is reported and
the others run (the node exits 2 only when none can).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from camera_node.plugin import PLUGIN
from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from homesec.bus import MqttBus
from homesec.config import (
    Config,
    ConfigError,
    load_config,
    mqtt_for_role,
    node_client_id,
    node_sections,
    node_user,
    password_path,
)
from homesec.files import private_dir, private_umask
from homesec.logs import setup_logging
from homesec.runner import node_parser, wait_for_stop

log = logging.getLogger(__name__)


def pulse_mock_pir(service: CameraService, seconds: float = 0.5) -> None:
    """Drive gpiozero's mock PIR pin high, then low: someone walks past a camera in another process."""
    if service.pir is None:
        log.warning("SIGUSR1: no PIR in trigger mode %r", service.settings.trigger)
        return
    service.pir.pin.drive_high()
    time.sleep(seconds)
    service.pir.pin.drive_low()


def pulse_on_sigusr1(services: list[CameraService]) -> None:
    """With the mock pin factory (demos, end-to-end tests), `kill -USR1 <pid>` plays the PIR sensor of
    every camera in `services` (read at each signal: set up before the cameras connect)."""
    if os.environ.get("GPIOZERO_PIN_FACTORY") != "mock":
        return
    if threading.current_thread() is not threading.main_thread():
        return

    def pulse(*_: object) -> None:
        for service in services:
            if service.pir is not None:
                threading.Thread(target=pulse_mock_pir, args=(service,)).start()

    signal.signal(signal.SIGUSR1, pulse)


def setup_camera_logging(level: str, *, json_format: bool, name: str) -> None:
    """The node's logging. httpx logs every request at INFO: a snapshot camera polled twice a second
    (and Frigate's API) would write 170,000 lines a day, so its lines show only at DEBUG."""
    setup_logging(level, json_format=json_format, name=name)
    debug = logging.getLevelName(level) <= logging.DEBUG
    logging.getLogger("httpx").setLevel(logging.DEBUG if debug else logging.WARNING)


def _camera_bus(config: Config, settings: CameraSettings) -> MqttBus:
    """The bus of one camera, as its own broker user; ValueError when it has no password."""
    node = PLUGIN.node_name(settings)
    mqtt = mqtt_for_role(config, node_user(node))
    user = mqtt.username or node_user(node)
    if mqtt.password is None:
        raise ValueError(
            f"no MQTT password for user {user!r}: set HOMESEC_MQTT_PASSWORD, mqtt.password_file, or create "
            f"{password_path(config, user)} (`homesec broker init` does)"
        )
    client_id = node_client_id(user, mqtt.password.get_secret_value())
    return MqttBus(mqtt, node=node, client_id=client_id, persistent=PLUGIN.persistent_session)


def start_camera(config: Config, settings: CameraSettings) -> tuple[CameraService, MqttBus] | None:
    """Build and start one camera's service (its bus is started by the caller, after it); None, logged,
    when it cannot start."""
    node = PLUGIN.node_name(settings)
    service = None
    try:
        bus = _camera_bus(config, settings)
        service = CameraService(settings, config.data_dir, bus)
        service.start()
    except Exception as exc:
        log.error("%s cannot start: %s", node, exc)
        log.debug("start-up failure", exc_info=True)
        if service is not None:
            service.stop()  # whatever it started (threads, devices) goes down with it
        return None
    return service, bus


def run_cameras(argv: list[str] | None = None, stop_event: threading.Event | None = None) -> int:
    private_umask()
    args = node_parser("homesec-camera").parse_args(argv)
    try:
        config = load_config(args.config)
        if args.log_level:
            config.log.level = args.log_level.upper()
        cameras = node_sections(config, PLUGIN)
    except ConfigError as exc:
        setup_logging()
        log.error("%s", exc)
        return 2
    name = PLUGIN.node_name(cameras[0]) if len(cameras) == 1 else "camera/*"
    setup_camera_logging(config.log.level, json_format=config.log.json_format, name=name)
    private_dir(config.data_dir)
    services: list[CameraService] = []
    pulse_on_sigusr1(services)
    running = []
    for settings in cameras:
        if (started := start_camera(config, settings)) is None:
            continue  # logged; the other cameras go on
        service, bus = started
        services.append(service)
        bus.start()  # as the runner does: the service first, then the bus
        log.info("%s started; broker %s:%s", bus.node, bus.settings.host, bus.settings.port)
        running.append(started)
    if not running:
        return 2
    stop = stop_event or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    wait_for_stop(stop)
    log.info("%d camera(s) stopping", len(running))
    for service, bus in running:
        try:
            service.stop()
        finally:
            bus.stop()  # `stopped` is published even if the service stumbled on its way out
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cameras(argv)


if __name__ == "__main__":
    sys.exit(main())
