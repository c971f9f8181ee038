"""What every command of the `homesec` command line shares: exit codes, errors, the configuration.

The node packages' own commands (added through their plugins) use these too, so every command exits
and reports the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TypeVar

from homesec.config import Config, load_config
from homesec.settings import Section

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_ANSWER = 0, 1, 2, 3

S = TypeVar("S", bound=Section)


class CliError(RuntimeError):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int) -> int:
    """Say what went wrong on stderr; return the exit code."""
    print(f"homesec: {message}", file=sys.stderr)
    return code


def cli_config(args: argparse.Namespace) -> Config:
    """The configuration named by `--config` (or $HOMESEC_CONFIG), pointed at the local broker if any."""
    return with_local_broker(load_config(getattr(args, "config", None)))


def with_local_broker(config: Config) -> Config:
    """Talk to the broker `homesec up` runs (its port is in the data dir) unless a port was configured."""
    port_file = config.data_dir / "broker" / "port"
    if "port" in config.mqtt.model_fields_set or not port_file.exists():
        return config
    try:
        port = int(port_file.read_text())
    except ValueError:
        return config
    return config.model_copy(update={"mqtt": config.mqtt.model_copy(update={"port": port})})


def cli_section(args: argparse.Namespace, model: type[S], **overrides: Any) -> tuple[S, Path]:
    """One node's section, with the command-line `overrides` that were given (None: not given), and the
    data dir."""
    config = cli_config(args)
    section = config.section(model)
    given = {key: value for key, value in overrides.items() if value is not None}
    return (section.model_copy(update=given) if given else section), config.data_dir
