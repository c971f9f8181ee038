"""`homesec-notifier` / `python -m notifier_node`: run the notifier and its bot until SIGTERM or Ctrl-C."""

from __future__ import annotations

import sys
from pathlib import Path

from homesec.bus import Bus
from homesec.runner import run_node
from notifier_node.plugin import PLUGIN
from notifier_node.service import NotifierService
from notifier_node.settings import NotifierSettings


def build_service(settings: NotifierSettings, data_dir: Path, bus: Bus) -> NotifierService:
    return NotifierService(settings, data_dir, bus)


def main(argv: list[str] | None = None) -> int:
    return run_node(PLUGIN, build_service, argv)


if __name__ == "__main__":
    sys.exit(main())
