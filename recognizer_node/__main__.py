"""`homesec-recognizer` / `python -m recognizer_node`: run the recognizer node until SIGTERM or Ctrl-C."""

from __future__ import annotations

import sys
from pathlib import Path

from homesec.bus import Bus
from homesec.runner import Service, run_node
from recognizer_node.plugin import PLUGIN
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings


def build_service(settings: RecognizerSettings, data_dir: Path, bus: Bus) -> Service:
    """The MQTT service and, beside it over the same operations, the HTTP API (recognizer.http)."""
    from recognizer_node.http.server import with_http  # FastAPI and uvicorn: only in the node

    return with_http(RecognizerService(settings, data_dir, bus), settings.http, data_dir)


def main(argv: list[str] | None = None) -> int:
    return run_node(PLUGIN, build_service, argv)


if __name__ == "__main__":
    sys.exit(main())
