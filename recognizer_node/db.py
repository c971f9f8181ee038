"""SQLite plumbing of the gallery, the event archive and the directory index: WAL, explicit transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal


def open_db(path: Path, schema: str, synchronous: Literal["NORMAL", "FULL"]) -> sqlite3.Connection:
    """An autocommit connection usable from any thread (the owner serializes access with its lock)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA busy_timeout=5000")  # another process (the CLI) may hold the write lock briefly
    db.executescript(schema)
    return db


def data_version(db: sqlite3.Connection) -> int:
    """Changes whenever another connection commits: the signal to drop in-memory caches."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: all of it is committed, or none of it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
