"""What every command of the `homesec` command line shares: exit codes, errors, the configuration.

The node packages' own commands (added through their plugins) use these too, so every command exits
and reports the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from homesec.config import Config, load_config
from homesec.settings import Section

if TYPE_CHECKING:
    from homesec.contract import GalleryCommand, GalleryResult
    from homesec.remote import RemoteClient

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


def say(*parts: object) -> None:
    """Print one line now. Once stdout's reader is gone (`homesec up | tee up.log` and Ctrl-C, which ends
    `tee` too), the line is dropped rather than raised: a long run such as `up` must still stop what it
    started."""
    try:
        print(*parts, flush=True)
    except BrokenPipeError:
        quiet_stdout()


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so flushing it later (or at exit) does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def cli_config(args: argparse.Namespace) -> Config:
    """The configuration named by `--config` (or $HOMESEC_CONFIG), pointed at the local broker if any."""
    return with_local_broker(load_config(getattr(args, "config", None)))


PORT_FILE = Path("broker") / "port"  # under the data dir: the port of the broker its config is for
OWNER_FILE = Path("broker") / "up.pid"  # the `homesec up` that wrote PORT_FILE (none: `broker init` did)


def record_broker_port(data_dir: Path, port: int, owner: int | None = None) -> None:
    """Say which port the data dir's broker listens on, for the commands run later. `owner`: the pid of
    the `homesec up` that runs it (the port is then trusted only while that process lives)."""
    from homesec.files import write_atomic

    (data_dir / PORT_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(data_dir / PORT_FILE, f"{port}\n".encode())
    if owner is None:
        (data_dir / OWNER_FILE).unlink(missing_ok=True)
    else:
        write_atomic(data_dir / OWNER_FILE, f"{owner}\n".encode())


def forget_broker_port(data_dir: Path, owner: int) -> None:
    """`homesec up` ends: its port is no longer anyone's (unless another run took the files over)."""
    if _owner(data_dir) == owner:
        (data_dir / PORT_FILE).unlink(missing_ok=True)
        (data_dir / OWNER_FILE).unlink(missing_ok=True)


def local_broker_port(data_dir: Path) -> int | None:
    """The port recorded in the data dir, None when there is none or it is stale (its `up` is gone)."""
    try:
        port = int((data_dir / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    owner = _owner(data_dir)
    if owner is not None and not _alive(owner):
        return None  # left by an `up` that was killed: its broker is gone with it
    return port


def _owner(data_dir: Path) -> int | None:
    try:
        return int((data_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def with_local_broker(config: Config) -> Config:
    """Talk to the broker of the data dir (`homesec up`'s, or the one `broker init` configured) unless a
    port was configured."""
    if "port" in config.mqtt.model_fields_set:
        return config
    port = local_broker_port(config.data_dir)
    if port is None:
        return config
    return config.model_copy(update={"mqtt": config.mqtt.model_copy(update={"port": port})})


def remote_client(args: argparse.Namespace) -> RemoteClient:
    """The admin's connection to the data dir's broker (see `with_local_broker`), for remote commands."""
    from homesec.remote import RemoteClient

    config = cli_config(args)
    need_password(config)
    return RemoteClient(config, hint=stale_port_note(config))


def gallery_request(args: argparse.Namespace, cmd: GalleryCommand) -> GalleryResult:
    """Send a gallery command to the recognizer and wait for its answer (`--timeout`)."""
    from homesec.contract import GalleryResult

    with remote_client(args) as remote:
        return remote.request(remote.topics.gallery_cmd, cmd, GalleryResult, cmd.request_id, args.timeout)


def report(args: argparse.Namespace, result: GalleryResult, done: str) -> int:
    """The answer as JSON with --json, else what was done or why it was refused; the exit code."""
    if args.json:
        print(result.model_dump_json())
    else:
        print(done if result.ok else f"refused: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILED


def stale_port_note(config: Config) -> str:
    """Why the recorded port was not used, when a `homesec up` left it behind and is gone."""
    port_file = config.data_dir / PORT_FILE
    if "port" in config.mqtt.model_fields_set or not port_file.exists() or local_broker_port(config.data_dir):
        return ""
    return f"; {port_file} names the port of a `homesec up` that is no longer running: start it again"


def need_password(config: Config) -> None:
    """Refuse to go on without the admin password: the project's brokers refuse anonymous clients, so
    the broker that would answer is someone else's (a system Mosquitto on 1883)."""
    from homesec.config import mqtt_for_role, password_path
    from homesec.contract import Role

    settings = mqtt_for_role(config, Role.ADMIN)
    if settings.password is not None:
        return
    user = settings.username or str(Role.ADMIN)
    raise CliError(
        f"no MQTT password for the user {user!r}: looked for {password_path(config, user).absolute()} "
        f"(data dir {config.data_dir.absolute()}, broker {settings.host}:{settings.port}). Run this in the "
        "directory where `homesec up` runs, or name its data dir (HOMESEC_DATA_DIR=DIR, or `data_dir` "
        "in --config), or give the password (HOMESEC_MQTT_PASSWORD_FILE)",
        EXIT_USAGE,
    )


def cli_section(args: argparse.Namespace, model: type[S], **overrides: Any) -> tuple[S, Path]:
    """One node's section, with the command-line `overrides` that were given (None: not given), and the
    data dir."""
    config = cli_config(args)
    section = config.section(model)
    given = {key: value for key, value in overrides.items() if value is not None}
    return (section.model_copy(update=given) if given else section), config.data_dir
