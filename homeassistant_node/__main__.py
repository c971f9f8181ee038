"""`homesec-homeassistant` / `python -m homeassistant_node`: run the Home Assistant bridge until SIGTERM or
Ctrl-C."""

from __future__ import annotations

import sys
from pathlib import Path

from homeassistant_node.plugin import PLUGIN
from homeassistant_node.service import HomeAssistantBridge
from homeassistant_node.settings import HomeAssistantSettings
from homesec.bus import Bus
from homesec.runner import run_node


def build_service(settings: HomeAssistantSettings, data_dir: Path, bus: Bus) -> HomeAssistantBridge:
    return HomeAssistantBridge(settings, bus)


def main(argv: list[str] | None = None) -> int:
    return run_node(PLUGIN, build_service, argv)


if __name__ == "__main__":
    sys.exit(main())
