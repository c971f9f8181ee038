"""Camera node figures: motion detection cost per 320x240 lores frame, and PIR-trigger-to-published
latency through a real local mosquitto (the project's config and ACL, on a free port).

    .venv/bin/python bench/motion.py                 # both parts
    .venv/bin/python bench/motion.py --no-broker     # detection cost only

Latency covers: gpiozero sampling the PIR pin (MockFactory, sample_rate from the config), the frame
loop noticing it, waiting for the next frame, JPEG-encoding the full-resolution frame, and the
publish with its PUBACK until a subscriber receives it.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from camera_node import synthetic
from camera_node.motion import MotionDetector, MotionParams
from camera_node.settings import MotionSettings
from camera_node.sources import Frame, WantMain, luma, to_jpeg, wanted

Size = tuple[int, int]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bench_detection(n: int) -> None:
    frames = [luma(Image.fromarray(f), (320, 240)) for f in synthetic.walk_in((320, 240))]
    variants = {
        "default (compensation + despeckle)": MotionParams.from_settings(MotionSettings()),
        "bare (threshold + area only)": MotionParams(compensate=False, despeckle=False),
    }
    print(f"motion detection, 320x240 lores, {n} frames of a walk-in scene (moving and still frames):")
    for name, params in variants.items():
        det = MotionDetector(params)
        times = []
        for i in range(n):
            f = frames[i % len(frames)]
            t = time.perf_counter()
            det.update(f)
            times.append((time.perf_counter() - t) * 1000)
        print(
            f"  {name:38s} mean {statistics.fmean(times):.3f} ms  median {pct(times, 50):.3f} ms  "
            f"p95 {pct(times, 95):.3f} ms  max {max(times):.3f} ms"
        )


class StillSource:
    """A live-like source: one full-resolution RGB frame (encoded per snapshot) at `fps`."""

    lores_size: Size = (320, 240)

    def __init__(self, size: Size, fps: float) -> None:
        self.size, self.fps = size, fps
        self.rgb = synthetic.with_noise(synthetic.background(size), 3.0, np.random.default_rng(0))
        self.lores = luma(Image.fromarray(self.rgb), self.lores_size)
        self.i = 0
        self._next = 0.0

    def start(self) -> None:
        self._next = time.monotonic()

    def stop(self) -> None: ...

    def read(self, want_main: WantMain = False) -> Frame:
        self._next += 1 / self.fps
        time.sleep(max(0.0, self._next - time.monotonic()))
        self.i += 1
        return Frame(self.lores, self.rgb if wanted(want_main) else None, self.size, time.monotonic(), self.i)


def bench_latency(trials: int, size: Size, fps: float, sample_rate: float, workdir: Path) -> None:
    import paho.mqtt.client as mqtt
    from gpiozero.pins.mock import MockFactory
    from paho.mqtt.enums import CallbackAPIVersion
    from pydantic import SecretStr

    from camera_node.service import CameraService
    from camera_node.settings import CameraSettings
    from homesec.broker import MosquittoProcess, free_port, prepare_local_broker
    from homesec.bus import MqttBus
    from homesec.contract import Role, Topics
    from homesec.settings import MqttSettings
    from tests.mqtt_helpers import harness_accounts

    port = free_port()
    # The harness's observer reads snapshots (the deployment's viewer may not).
    files = prepare_local_broker(workdir, port, extra=harness_accounts("homesec"))
    broker = MosquittoProcess(files.conf, port, workdir / "mosquitto.log")
    broker.start()

    def settings(role: Role) -> MqttSettings:
        return MqttSettings(port=port, username=str(role), password=SecretStr(files.passwords[str(role)]))

    topics = Topics()
    arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
    # A plain subscriber (the viewer role may only read, so no availability messages from it).
    viewer = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    viewer.username_pw_set("observer", files.passwords["observer"])
    viewer.on_message = lambda _c, _u, msg: arrivals.put((msg.topic, time.perf_counter()))
    viewer.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(
        [(topics.snapshot("bench"), 1), (topics.motion("bench"), 1)]
    )
    camera = CameraSettings.model_validate(
        {
            "id": "bench",
            "trigger": "pir",
            "resolution": size,
            "fps": fps,
            "pir": {"pin": 17, "sample_rate": sample_rate},
            "motion": {"event_gap_s": 0.2},
            "burst": {"count": 1},
            "cooldown_s": 0,
        }
    )
    factory = MockFactory()
    bus = MqttBus(settings(Role.CAMERA), node="camera/bench")
    svc = CameraService(camera, workdir / "data", bus, source=StillSource(size, fps), pin_factory=factory)
    try:
        svc.start()
        bus.start()
        viewer.connect("127.0.0.1", port)
        viewer.loop_start()
        assert bus.wait_connected(10)
        time.sleep(0.3)
        svc.pir.wait_for_no_motion(timeout=2)
        to_motion, to_snapshot = [], []
        pin = factory.pin(17)
        for _ in range(trials):
            while not arrivals.empty():
                arrivals.get_nowait()
            t0 = time.perf_counter()
            pin.drive_high()
            seen: dict[str, float] = {}
            while len(seen) < 2:
                topic, t = arrivals.get(timeout=10)
                seen.setdefault(topic, t)
            to_motion.append((seen[topics.motion("bench")] - t0) * 1000)
            to_snapshot.append((seen[topics.snapshot("bench")] - t0) * 1000)
            pin.drive_low()
            topic, _ = arrivals.get(timeout=10)  # the motion end
            time.sleep(0.05)
        print(
            f"PIR trigger -> received via mosquitto ({trials} trials, {size[0]}x{size[1]} frames at {fps:g} fps, "
            f"PIR sampled at {sample_rate:g} Hz):"
        )
        for name, values in (("motion start event", to_motion), ("first snapshot (JPEG)", to_snapshot)):
            print(
                f"  {name:22s} median {pct(values, 50):.0f} ms  p95 {pct(values, 95):.0f} ms  "
                f"min {min(values):.0f} ms  max {max(values):.0f} ms"
            )
        source = svc.source
        assert isinstance(source, StillSource)
        encode = []
        for _ in range(10):
            t = time.perf_counter()
            to_jpeg(source.rgb, camera.burst.jpeg_quality)
            encode.append((time.perf_counter() - t) * 1000)
        print(
            f"  (of which JPEG encoding at quality {camera.burst.jpeg_quality}: median {pct(encode, 50):.0f} ms)"
        )
    finally:
        svc.stop()
        bus.stop()
        viewer.disconnect()
        viewer.loop_stop()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=5000, help="frames for the detection benchmark")
    parser.add_argument("--trials", type=int, default=20, help="PIR triggers for the latency benchmark")
    parser.add_argument("--size", default="1920x1080", help="full resolution for the latency benchmark")
    parser.add_argument("--fps", type=float, default=10.0, help="camera frame rate for the latency benchmark")
    parser.add_argument(
        "--pir-sample-rate", type=float, default=10.0, help="gpiozero sample_rate (config default)"
    )
    parser.add_argument("--no-broker", action="store_true", help="skip the latency benchmark")
    args = parser.parse_args()
    bench_detection(args.frames)
    if not args.no_broker:
        w, _, h = args.size.partition("x")
        with tempfile.TemporaryDirectory(prefix="homesec-bench-") as tmp:
            try:
                bench_latency(args.trials, (int(w), int(h)), args.fps, args.pir_sample_rate, Path(tmp))
            except FileNotFoundError as exc:  # no mosquitto installed
                print(f"latency benchmark skipped: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
