"""`homesec-recognizer` / `python -m recognizer_node`: run the recognizer node until SIGTERM or Ctrl-C."""

from __future__ import annotations

import sys

from homesec.bus import Bus
from homesec.config import Config
from homesec.contract import Role
from homesec.runner import run_node
from recognizer_node.service import RecognizerService


def node_name(config: Config) -> str:
    return f"recognizer/{config.recognizer.instance}"


def build_service(config: Config, bus: Bus) -> RecognizerService:
    return RecognizerService(config, bus)


def main(argv: list[str] | None = None) -> int:
    return run_node(Role.RECOGNIZER, node_name, build_service, argv)


if __name__ == "__main__":
    sys.exit(main())
