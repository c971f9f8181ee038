"""Small JPEGs for the pages, made once and kept on disk: snapshot thumbnails and face cuts.

A page lists up to a few dozen visits; decoding each full-size snapshot at every view would take more
time than the page may. The cache lives in the archive's directory (`.web-cache/`, 0700, files 0600:
they are photos of people) and forgets what is older than the archive keeps.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from homesec.files import private_dir, write_atomic

Box = tuple[int, int, int, int]
THUMB_WIDTH = 480  # twice the width a card shows, for phones' dense screens
FACE_SIZE = 160
PRUNE_EVERY_S = 3600.0


class ThumbCache:
    def __init__(self, directory: Path, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.max_age_s = max_age_s
        self.clock = clock
        self._lock = threading.Lock()
        self._pruned = 0.0

    def get(self, key: str, make: Callable[[], bytes | None]) -> bytes | None:
        """The cached JPEG of `key`, or the one `make` returns (None: nothing to show), kept for next time."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        data = make()
        if data is not None:
            private_dir(path.parent)
            write_atomic(path, data)
        self._prune_now_and_then()
        return data

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest[2:32]}.jpg"

    def _prune_now_and_then(self) -> None:
        now = self.clock()
        with self._lock:
            if now - self._pruned < PRUNE_EVERY_S:
                return
            self._pruned = now
        self.prune(now)

    def prune(self, now: float) -> int:
        """Delete the cached files older than the archive keeps snapshots; how many."""
        gone = 0
        for path in self.directory.glob("*/*.jpg"):
            try:
                if now - path.stat().st_mtime > self.max_age_s:
                    path.unlink()
                    gone += 1
            except FileNotFoundError:
                continue
        return gone


def thumbnail(jpeg: bytes, width: int = THUMB_WIDTH) -> bytes:
    with Image.open(io.BytesIO(jpeg)) as im:
        im.draft("RGB", (width, width))  # JPEG DCT scaling: decodes at a fraction of the size
        small = im.convert("RGB")
        small.thumbnail((width, width * 2))
        return _jpeg(small)


def face_cut(jpeg: bytes, box: Box, size: int = FACE_SIZE) -> bytes:
    """The face of `box` with a margin around it, as a square JPEG."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * 1.4
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    with Image.open(io.BytesIO(jpeg)) as im:
        rgb = im.convert("RGB")
        square = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
        face = rgb.crop(square).resize((size, size), Image.Resampling.LANCZOS)
        return _jpeg(face)


def image_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from the header only."""
    with Image.open(io.BytesIO(jpeg)) as im:
        return im.size


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


def cache_dir(archive_dir: Path) -> Path:
    return archive_dir / ".web-cache"
