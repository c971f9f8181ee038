"""`homesec-notifier` / `python -m notifier_node`: run the notifier and its bot until SIGTERM or Ctrl-C."""

from __future__ import annotations

import sys

from homesec.bus import Bus
from homesec.config import Config
from homesec.contract import Role
from homesec.runner import run_node
from notifier_node.service import NotifierService

NODE = "notifier/main"


def node_name(config: Config) -> str:
    return NODE


def build_service(config: Config, bus: Bus) -> NotifierService:
    return NotifierService(config, bus)


def main(argv: list[str] | None = None) -> int:
    return run_node(Role.NOTIFIER, node_name, build_service, argv)


if __name__ == "__main__":
    sys.exit(main())
