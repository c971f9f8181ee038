"""Progress bars for the long runs of the command line (`faces search` over a folder, `models install`,
re-embedding a gallery): on a terminal only. Nothing extra when stderr is not a terminal (a pipe, a log
file, `homesec up`'s node logs) or with `--json`, so scripts read only what they asked for."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_wanted(as_json: bool = False) -> bool:
    """A bar only for a person at a terminal: stderr is one, and no machine-readable output was asked for."""
    isatty = getattr(sys.stderr, "isatty", None)
    return not as_json and callable(isatty) and bool(isatty())


def progress(items: Iterable[T], *, desc: str, unit: str, enabled: bool) -> Iterator[T]:
    """`items`, with a bar on stderr while they are gone through (when `enabled`)."""
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    listed = list(items)  # the total first: a bar that knows where it ends
    yield from tqdm(listed, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)


class Ticker:
    """A bar advanced by hand (`tick()`), for work done inside a callee; a no-op unless `enabled`."""

    def __init__(self, total: int | None, *, desc: str, unit: str, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True
            )

    def tick(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Callable[..., None]:
        return self.tick

    def __exit__(self, *_: object) -> None:
        self.close()
