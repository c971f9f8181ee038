"""Start-up and shut-down shared by the node programs.

Fail fast on bad config (exit 2 with a message naming the key); once running, bad messages only
produce error reports. SIGTERM and SIGINT leave cleanly: the service stops, `stopped` is published.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from homesec.bus import Bus, MqttBus
from homesec.config import ConfigError, load_config, mqtt_for_role, node_client_id, node_user, password_path
from homesec.files import private_dir, private_umask
from homesec.logs import setup_logging
from homesec.plugins import NodePlugin
from homesec.settings import Section

log = logging.getLogger(__name__)


class Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Section)


def wait_for_stop(stop: threading.Event, slice_s: float = 0.5) -> None:
    """Block until `stop` is set, in slices: a SIGTERM or Ctrl-C that the kernel hands to another
    thread (paho's, onnxruntime's) only runs its Python handler once the main thread runs Python
    again, which an untimed wait never does."""
    while not stop.wait(slice_s):
        pass


def node_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument(
        "--config", type=Path, help="TOML config file (default: $HOMESEC_CONFIG or built-in defaults)"
    )
    parser.add_argument("--log-level", help="override log.level")
    return parser


def run_node(
    plugin: NodePlugin[S],
    build: Callable[[S, Path, Bus], Service],
    argv: list[str] | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Run the node of `plugin`, its service built from its own section and the data dir."""
    private_umask()
    role = plugin.role
    args = node_parser(f"homesec-{role}").parse_args(argv)
    try:
        config = load_config(args.config)
        if args.log_level:
            config.log.level = args.log_level.upper()
        settings = config.section(plugin.settings)
        node = plugin.node_name(settings)
        mqtt = mqtt_for_role(config, node_user(node))
    except ConfigError as exc:
        setup_logging()
        log.error("%s", exc)
        return 2
    setup_logging(config.log.level, json_format=config.log.json_format, name=node)
    user = mqtt.username or node_user(node)
    if mqtt.password is None:
        log.error(
            "no MQTT password for user %r: set HOMESEC_MQTT_PASSWORD, mqtt.password_file, or create %s "
            "(`homesec broker init` does)",
            user,
            password_path(config, user),
        )
        return 2
    bus = MqttBus(
        mqtt,
        node=node,
        client_id=node_client_id(user, mqtt.password.get_secret_value()),
        persistent=plugin.persistent_session,
    )
    try:
        private_dir(config.data_dir)
        service = build(settings, config.data_dir, bus)
    except Exception as exc:
        log.error("%s cannot start: %s", node, exc)
        log.debug("start-up failure", exc_info=True)
        return 2
    try:
        service.start()
    except Exception as exc:
        log.error("%s cannot start: %s", node, exc)
        log.debug("start-up failure", exc_info=True)
        service.stop()  # whatever it started (threads, devices) goes down with it
        return 2
    stop = stop_event or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    bus.start()
    log.info("%s started; broker %s:%s", node, mqtt.host, mqtt.port)
    wait_for_stop(stop)
    log.info("%s stopping", node)
    try:
        service.stop()
    finally:
        bus.stop()  # `stopped` is published even if the service stumbled on its way out
    return 0
