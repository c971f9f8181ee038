"""File writes that a crash or a power cut cannot leave half done, and private by default."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """Files and directories this process creates are its user's only (0600 / 0700), whatever umask
    the shell had: the data dir holds face crops, visitors' photos and secrets."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> None:
    """`path` exists and is its owner's only (a data dir made earlier under a looser umask too)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one, even after a
    power cut: the temporary file is synced before the rename, and the directory after it. The file gets
    `mode` (owner only by default) whatever the umask."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), mode)  # also when a stale temporary file had another mode
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms and file systems cannot open a directory; the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
