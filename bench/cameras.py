"""IP camera figures: the CPU one 1080p RTSP camera costs the camera node, and trigger → snapshot latency
over RTSP through a real mosquitto.

    .venv/bin/python bench/cameras.py                    # both parts, 30 s of CPU sampling
    .venv/bin/python bench/cameras.py --seconds 60 --trials 30
    .venv/bin/python bench/cameras.py --preset ultrafast   # the cheapest stream to decode

The camera is GStreamer's RTSP server (tests/rtsp_server.py, run by the system Python) serving H.264
(x264 superfast, with CABAC and deblocking as cameras' encoders use them: ultrafast has neither and is
cheaper to decode than a real camera's stream; a keyframe a second, 4 Mbit/s main, 512 kbit/s sub) of the demo scene (demo/camera:
a visitor every few seconds) at 1920x1080 with sensor grain added, and a 640x360 substream, at 15 fps
each, as a Reolink or Hikvision sends them. The camera node (in this process) decodes both: motion detection at 5 fps on the substream,
snapshots from the main stream. The server's own CPU (encoding) is not counted: only this process's.

CPU: the whole camera service (decoding both streams, detection, the events and bursts of the demo's
visitors, JPEG encoding, spooling) against a fake in-memory MQTT client, as a share of one core
(process CPU time / wall time). Measured twice: with the substream, and without it (motion on the main
stream scaled down, the configuration for a camera that has no substream).

Latency: a capture command published (as `homesec capture` does) → the 1080p snapshot received by a
subscriber, through mosquitto, `trials` times: the time to take the main stream's newest decoded frame,
encode it, spool it and publish it. A motion trigger adds the detection's pace to it (up to one 5 fps
frame, 200 ms, times `camera.motion.min_frames`) and the stream's own latency (the camera's encoder
and network, not measurable from here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PIL import Image

from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from homesec.broker import free_port
from homesec.contract import CaptureCommand, Role, SnapshotMeta, Topics, parse_meta
from tests.helpers import LocalBus
from tests.mqtt_helpers import Broker, Collector, raw_client
from tests.rtsp_server import RtspServer

REPO = Path(__file__).resolve().parent.parent
DEMO = sorted((REPO / "demo" / "camera").glob("*.jpg"))
T = Topics()


def settings(server: RtspServer, substream: bool, trigger: str = "motion") -> CameraSettings:
    fields: dict[str, Any] = {
        "id": "bench",
        "source": "rtsp",
        "url": server.url("/main"),
        "resolution": (1920, 1080),
        "lores": (640, 360),
        "fps": 5,
        "trigger": trigger,
        "motion": {"event_gap_s": 1.5},
        "cooldown_s": 2,
    }
    if substream:
        fields["substream_url"] = server.url("/sub")
    return CameraSettings.model_validate(fields)


def grainy_1080p(frames: list[Path], directory: Path) -> list[Path]:
    """The demo frames at 1920x1080 with a camera's sensor grain (sigma 3 levels), so H.264 has as
    much to encode and decode as a real camera's picture: the clean, upscaled demo frames are mostly
    static blocks, which cost a decoder next to nothing."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = []
    for i, frame in enumerate(frames):
        with Image.open(frame) as img:
            big = np.asarray(
                img.convert("RGB").resize((1920, 1080), Image.Resampling.BILINEAR), dtype=np.int16
            )
        noisy = np.clip(big + rng.normal(0, 3, big.shape), 0, 255).astype(np.uint8)
        path = directory / f"{i:05d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        out.append(path)
    return out


def decoded(service: CameraService) -> dict[str, int]:
    return dict(getattr(service.source, "decoded", {}))


def cpu_share(server: RtspServer, substream: bool, seconds: float, data_dir: Path) -> tuple[float, int, str]:
    """(share of one core, snapshots taken, frames decoded per second by stream) for one camera over
    `seconds`, after a 3 s warm-up."""
    bus = LocalBus("camera/bench")
    service = CameraService(settings(server, substream), data_dir, bus)
    service.start()
    bus.start()
    try:
        deadline = time.monotonic() + 15
        while service.state.state != "online" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)
        wall0, cpu0 = time.monotonic(), time.process_time()
        snaps0 = sum(1 for m in list(bus.published) if m.topic == T.snapshot("bench"))
        frames0 = decoded(service)
        time.sleep(seconds)
        wall = time.monotonic() - wall0
        share = (time.process_time() - cpu0) / wall
        snaps = sum(1 for m in list(bus.published) if m.topic == T.snapshot("bench")) - snaps0
        rates = ", ".join(
            f"{name} {(n - frames0[name]) / wall:.1f} fps" for name, n in decoded(service).items()
        )
        return share, snaps, rates
    finally:
        service.stop()
        bus.close()


def capture_latency(server: RtspServer, trials: int, directory: Path) -> list[float]:
    """Milliseconds from a capture command published to its snapshot received, through mosquitto."""
    broker = Broker(directory / "broker")
    broker.start()
    collector = Collector(broker, T.snapshot("bench"))
    bus = broker.bus(Role.CAMERA, "camera/bench")
    service = CameraService(settings(server, True, trigger="manual"), directory / "data", bus)
    service.start()
    bus.start()
    admin, _code = raw_client(broker, "publisher")
    took = []
    try:
        deadline = time.monotonic() + 15
        while service.state.state != "online" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        for _ in range(trials):
            cmd = CaptureCommand(burst=1)
            sent = time.monotonic()
            admin.publish(T.camera_cmd_capture("bench"), cmd.to_json(), qos=1)
            msg = collector.wait_for(
                lambda m, c=cmd: parse_meta(SnapshotMeta, m.user_properties).event_id == c.request_id,  # type: ignore[misc]
                timeout=10,
            )
            took.append((time.monotonic() - sent) * 1000)
            assert parse_meta(SnapshotMeta, msg.user_properties).width == 1920
            time.sleep(0.5)
    finally:
        admin.disconnect()
        admin.loop_stop()
        service.stop()
        bus.stop()
        collector.close()
        broker.stop()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU sampling time per configuration")
    parser.add_argument("--trials", type=int, default=20, help="capture → snapshot trials")
    parser.add_argument(
        "--preset",
        default="superfast",
        help="x264 speed-preset of the served stream: superfast has CABAC and deblocking, as cameras' "
        "H.264 has; ultrafast has neither and is cheaper to decode than any camera's stream",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cameras-") as tmp:
        directory = Path(tmp)
        frames = grainy_1080p(DEMO, directory / "grainy")
        server = RtspServer(
            frames,
            directory / "rtsp",
            free_port(),
            fps=15,
            size="1920x1080",
            sub_size="640x360",
            kbps=4096,
            preset=args.preset,
        )
        server.start()
        try:
            for substream in (True, False):
                share, snaps, rates = cpu_share(
                    server, substream, args.seconds, directory / f"cpu-{substream}"
                )
                how = "640x360 substream" if substream else "main stream scaled to 640x360"
                print(
                    f"CPU, one 1080p15 RTSP camera (x264 {args.preset}), motion at 5 fps on the {how}: "
                    f"{share * 100:.0f}% of one core "
                    f"({snaps} snapshots in {args.seconds:g} s; decoded: {rates})",
                    flush=True,
                )
            took = capture_latency(server, args.trials, directory)
            q = statistics.quantiles(took, n=20)
            print(
                f"capture command → 1080p snapshot received over RTSP + mosquitto, {len(took)} trials: "
                f"median {statistics.median(took):.0f} ms, p95 {q[18]:.0f} ms, max {max(took):.0f} ms",
                flush=True,
            )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
