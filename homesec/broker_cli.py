"""`homesec broker init`'s deployment options: where the broker listens (this machine only, or the LAN for
camera Pis), the port docker-compose publishes, and what to tell the user about connecting to it.

The command itself lives in homesec/cli.py; these helpers decide the listener and print the next steps.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from pathlib import Path

from homesec.broker import DYNSEC_FILE, BrokerFiles
from homesec.cliutil import local_broker_port
from homesec.config import Config
from homesec.contract import Role

LOOPBACK = "127.0.0.1"
EVERY_INTERFACE = "0.0.0.0"
# docker-compose.yml publishes the broker here by default (.env: HOMESEC_BROKER_PORT): 1883 is usually
# this host's own Mosquitto.
COMPOSE_BROKER_PORT = 1884
COMPOSE_CONF = "mosquitto/mosquitto.conf"  # what docker-compose.yml mounts (`homesec broker render`)
_LISTENER = re.compile(r"^listener\s+(\d+)(?:\s+(\S+))?\s*$", re.MULTILINE)


def add_listen_options(init: argparse.ArgumentParser) -> None:
    where = init.add_mutually_exclusive_group()
    where.add_argument(
        "--listen",
        metavar="ADDRESS",
        help=f"address the broker listens on (default: as before, first {LOOPBACK}: this machine only)",
    )
    where.add_argument(
        "--lan",
        action="store_const",
        dest="listen",
        const=EVERY_INTERFACE,
        help=f"listen on every interface ({EVERY_INTERFACE}): camera Pis on the LAN connect",
    )
    init.add_argument(
        "--compose",
        action="store_true",
        help=f"for docker-compose.yml: port {COMPOSE_BROKER_PORT} unless --port, and the .env lines to use",
    )


def init_port(args: argparse.Namespace, config: Config) -> int:
    """--port; else the port recorded or configured before; else compose's published port or mqtt.port."""
    if args.port:
        return int(args.port)
    earlier = "port" in config.mqtt.model_fields_set or local_broker_port(config.data_dir) is not None
    if args.compose and not earlier:
        return COMPOSE_BROKER_PORT
    return config.mqtt.port


def previous_listener(conf: Path) -> str | None:
    """The address an earlier `broker init` made the broker listen on ("" = every interface)."""
    try:
        found = _LISTENER.search(conf.read_text())
    except OSError:
        return None
    return None if found is None else (found.group(2) or "")


def listen_address(args: argparse.Namespace, data_dir: Path) -> str:
    """--listen/--lan; else what the broker listened on before (adding a camera keeps the LAN open)."""
    if args.listen is not None:
        return str(args.listen)
    earlier = previous_listener(data_dir / "broker" / "mosquitto.conf")
    return LOOPBACK if earlier is None else earlier


def lan_address() -> str | None:
    """This machine's address on the LAN: the source address of a route outwards (nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only the routing table is consulted
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


def _local_only(bind: str) -> bool:
    return bind.startswith("127.") or bind in ("localhost", "::1")


def _camera_password(files: BrokerFiles) -> str:
    cameras = [a.user for a in files.accounts if a.role == Role.CAMERA]
    name = f"mqtt-{cameras[0]}.password" if cameras else "mqtt-camera-<id>.password"
    return str(files.directory / "secrets" / name)


def broker_config_shown(files: BrokerFiles, *, compose: bool) -> str:
    """The broker config the user will run: docker-compose.yml mounts the shipped one (container paths),
    which reads the accounts from the data dir; a local mosquitto runs the data dir's."""
    if not compose:
        return str(files.conf)
    return f"{COMPOSE_CONF} (docker-compose.yml mounts it; accounts in {files.conf.parent / DYNSEC_FILE})"


def print_next_steps(files: BrokerFiles, bind: str, *, compose: bool) -> None:
    """How to run the broker (mosquitto, or docker compose) and how a camera Pi reaches it."""
    host = lan_address() or "<this machine's address>"
    if compose:
        _print_compose(files)
    elif _local_only(bind):
        print(f"run it:  mosquitto -c {files.conf}")
        print(
            f"it listens on {bind}:{files.port} only: a camera on another machine cannot connect "
            "(`homesec broker init --lan` opens it to the LAN; docker compose: `--compose`)"
        )
        return
    else:
        print(f"run it:  mosquitto -c {files.conf}   (listens on {bind or 'every interface'}:{files.port})")
    print(
        f"a camera Pi connects to {host}:{files.port} (mqtt.host, mqtt.port) with only its own password "
        f"file, e.g. {_camera_password(files)} (docs/raspberry-pi.md)"
    )
    if any(a.role == Role.HOMEASSISTANT for a in files.accounts):
        print(
            f"Home Assistant connects to {host}:{files.port} as user {Role.HOMEASSISTANT}, password in "
            f"{files.directory / 'secrets' / 'mqtt-homeassistant.password'} (docs/home-assistant.md)"
        )


def _print_compose(files: BrokerFiles) -> None:
    data_dir = files.directory.absolute()
    owner = os.stat(data_dir)
    print("for docker compose, in .env (next to docker-compose.yml):")
    print(f"  HOMESEC_DATA={data_dir}")
    print(f"  HOMESEC_UID={owner.st_uid}")
    print(f"  HOMESEC_GID={owner.st_gid}")
    print(f"  HOMESEC_BROKER_PORT={files.port}")
    if owner.st_uid == 0:
        print(
            "  (the data dir belongs to root, so the nodes would run as root: run `broker init` as the user "
            "who runs docker compose, or `chown -R 10001:10001` the data dir and use 10001)"
        )
    print("then:  docker compose up -d   (after adding a camera: docker compose restart mosquitto)")
