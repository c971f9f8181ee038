"""Where frames come from: a Raspberry Pi camera (picamera2) or a directory of images (replay); the
IP cameras, webcams and Frigate are in `streams` and `frigate`.

Each read gives the lores luma plane for motion detection and, only when asked (snapshots), the
full-resolution image: copying a 1080p frame every time would cost more than the detection itself.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from camera_node.settings import CameraSettings

Size = tuple[int, int]  # width, height
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm"}
JPEG_SUFFIXES = {".jpg", ".jpeg"}


@dataclass(frozen=True)
class Frame:
    lores_y: NDArray[np.uint8]  # H x W luma of the lores stream
    main: NDArray[np.uint8] | bytes | None  # full-res RGB (H x W x 3) or a JPEG; None unless asked for
    size: Size  # full-resolution width, height
    ts: float  # seconds on the monotonic clock (replay: its own steady clock)
    index: int


WantMain = bool | Callable[[], bool]


def wanted(want_main: WantMain) -> bool:
    return want_main() if callable(want_main) else want_main


class FrameSource(Protocol):
    lores_size: Size

    def start(self) -> None: ...

    def read(self, want_main: WantMain = False) -> Frame | None:
        """The next frame (blocks until it is due); None when a non-looping replay has ended.

        `want_main` may be a callable, asked once the frame has arrived: a PIR edge during the wait
        then still gets this frame's full image instead of the next one's (one frame less latency).
        """
        ...

    def stop(self) -> None: ...


def to_jpeg(main: NDArray[np.uint8] | bytes, quality: int) -> bytes:
    """JPEG bytes of a frame's main image (an already encoded JPEG passes through unchanged)."""
    if isinstance(main, bytes):
        return main
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(main).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def luma(img: Any, size: Size) -> NDArray[np.uint8]:
    """Luma plane of a PIL image at `size` (BT.601 weights, like the camera's Y plane)."""
    from PIL import Image

    grey = img.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8)


class ReplaySource:
    """Images from a directory in sorted order at `fps`, optionally looping.

    Frame times follow a steady clock (start + index / fps), so detection on a replay does not depend
    on how busy the machine is. `realtime=False` skips the waiting (tests, benchmarks); `sleep` replaces
    it (a fake clock's, in tests: paced frames at no cost). By default the wait ends early on `stop()`.
    """

    def __init__(
        self,
        directory: Path,
        fps: float = 10.0,
        loop: bool = True,
        lores_size: Size = (320, 240),
        *,
        realtime: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if not directory.is_dir():
            raise ValueError(f"camera.replay.dir: {directory} is not a directory")
        self.files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ValueError(
                f"camera.replay.dir: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {directory}"
            )
        self.fps, self.loop, self.lores_size, self.realtime = fps, loop, lores_size, realtime
        self._clock = clock
        self._stopped = threading.Event()
        self._sleep = sleep or self._stopped.wait
        self._t0 = 0.0
        self._index = 0
        self._lores: dict[Path, tuple[NDArray[np.uint8], Size]] = {}  # decoded once, reused when looping

    def start(self) -> None:
        self._t0 = self._clock()
        self._index = 0
        self._stopped.clear()

    def stop(self) -> None:
        self._stopped.set()

    def read(self, want_main: WantMain = False) -> Frame | None:
        i = self._index
        if self._stopped.is_set() or (i >= len(self.files) and not self.loop):
            return None
        ts = self._t0 + i / self.fps
        if self.realtime:
            self._sleep(max(0.0, ts - self._clock()))
            if self._stopped.is_set():
                return None
        self._index += 1
        path = self.files[i % len(self.files)]
        lores, size, main = self._load(path, wanted(want_main))
        return Frame(lores, main, size, ts, i)

    def _load(
        self, path: Path, want_main: bool
    ) -> tuple[NDArray[np.uint8], Size, NDArray[np.uint8] | bytes | None]:
        from PIL import Image

        cached = self._lores.get(path)
        if cached is not None and not want_main:
            return cached[0], cached[1], None
        with Image.open(path) as img:
            size: Size = img.size
            lores = cached[0] if cached else luma(img, self.lores_size)
            main: NDArray[np.uint8] | bytes | None = None
            if want_main:
                main = (
                    path.read_bytes()
                    if path.suffix.lower() in JPEG_SUFFIXES
                    else np.asarray(img.convert("RGB"))
                )
        self._lores[path] = (lores, size)
        return lores, size, main


class Picamera2Source:
    """The Pi camera: a full-resolution main stream and a YUV420 lores stream, read from the same
    request so that a snapshot is the frame the motion was seen in (or the next one)."""

    def __init__(self, main_size: Size, lores_size: Size, fps: float) -> None:
        self.main_size, self.lores_size, self.fps = main_size, lores_size, fps
        self._cam: Any = None
        self._index = 0

    def start(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise RuntimeError(
                "camera.source = 'picamera2' but picamera2 cannot be imported "
                f"({exc}); on Raspberry Pi OS: apt install python3-picamera2 and make the venv with "
                "--system-site-packages; elsewhere use source = 'replay'"
            ) from None
        cam = Picamera2()
        # "BGR888" is libcamera's name for R,G,B byte order, which is what PIL expects as RGB.
        config = cam.create_video_configuration(
            main={"size": self.main_size, "format": "BGR888"},
            lores={"size": self.lores_size, "format": "YUV420"},
            controls={"FrameRate": self.fps},
        )
        cam.configure(config)
        cam.start()
        self._cam = cam

    def read(self, want_main: WantMain = False) -> Frame | None:
        if self._cam is None:
            return None
        w, h = self.lores_size
        request = self._cam.capture_request()
        try:
            # The YUV420 buffer is the Y plane (h rows) followed by U and V; only Y is needed.
            lores = np.ascontiguousarray(request.make_array("lores")[:h, :w])
            main = request.make_array("main") if wanted(want_main) else None
        finally:
            request.release()  # hand the buffers back to the camera at once
        self._index += 1
        return Frame(lores, main, self.main_size, time.monotonic(), self._index - 1)

    def stop(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.stop()
            cam.close()


def make_source(
    settings: CameraSettings, data_dir: Path | None = None, on_state: Callable[..., None] | None = None
) -> FrameSource:
    """The frame source the config asks for; raises ValueError/RuntimeError with a readable reason.

    Live sources (IP cameras, webcams, Frigate) find the camera's password under `data_dir` and report
    their state (online, offline, error and why) through `on_state`."""
    if settings.source == "picamera2":
        return Picamera2Source(settings.resolution, settings.lores, settings.fps)
    if settings.source == "frigate":
        from camera_node.frigate import FrigateSource

        return FrigateSource.from_settings(settings, data_dir, on_state)
    if settings.source != "replay":
        from camera_node.streams import make_live_source

        return make_live_source(settings, data_dir, on_state)
    r = settings.replay
    if r.dir is None:
        raise ValueError("camera.source = 'replay' needs camera.replay.dir (a directory of images)")
    return ReplaySource(r.dir, r.fps, r.loop, settings.lores)
