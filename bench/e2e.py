"""End-to-end figures through a real mosquitto (prints figures; not a test).

(a) PIR-trigger -> Telegram sendPhoto latency: a camera node (replaying the demo stranger at the door,
    trigger = pir under gpiozero's MockFactory, burst 1, cooldown 0) is sent SIGUSR1, which pulses its
    mock PIR pin; the clock stops when the sendPhoto reaches a local fake Bot API server. A viewer
    subscriber timestamps the motion event, snapshot, result and alert on the way, for a breakdown.
(b) Snapshots per second with one and two recognizer replicas on the shared subscription: K JPEG
    snapshots published at once as the `camera` user, timed until all K results have arrived.
(c) In-process, what the recognizer service spends per snapshot: pipeline, archive write, alert photo.

    .venv/bin/python bench/e2e.py [--trials 20] [--latency-settings 10:10,30:100] [--snapshots 60]
        [--variants 1x2,1x1,2x1] [--skip-latency] [--skip-throughput] [--skip-service-work] [--keep]

Every node is a separate process (`python -m camera_node` ...), configured by environment overrides
as in tests/test_e2e.py; everything listens on 127.0.0.1. Each part gets a fresh broker: a stopped node
keeps its persistent session (and, for a recognizer, its place in the shared subscription).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homesec.broker import MosquittoProcess, free_port, prepare_local_broker  # noqa: E402
from homesec.contract import META_PROPERTY, Role, SnapshotMeta, Topics, meta_property  # noqa: E402
from tests.fake_telegram import CHAT, TOKEN, FakeTelegram  # noqa: E402
from tests.mqtt_helpers import harness_accounts  # noqa: E402

T = Topics()
STRANGER = sorted((REPO / "demo" / "camera").glob("2-stranger-*.jpg"))[-8:]  # standing at the door
OWNER_PHOTO = REPO / "demo" / "enroll" / "owner.jpg"
JITTER = random.Random(0)


@dataclass(frozen=True)
class Seen:
    topic: str
    at: float  # time.monotonic() of arrival at the viewer
    payload: bytes
    props: dict[str, str]

    def meta(self) -> dict[str, object]:
        return dict(json.loads(self.props.get(META_PROPERTY) or self.payload))


class Viewer:
    """A plain MQTT v5 subscriber (viewer role) that timestamps every message in paho's network thread."""

    def __init__(self, port: int, password: str) -> None:
        self.seen: list[Seen] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.username_pw_set("observer", password)
        ready = threading.Event()
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(f"{T.prefix}/#", qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("viewer could not subscribe")

    def _on(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        at = time.monotonic()
        props = dict(getattr(m.properties, "UserProperty", []) or [])
        with self._cond:
            self.seen.append(Seen(m.topic, at, bytes(m.payload), props))
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.seen)

    def collect(self, pred: Callable[[Seen], bool], n: int, timeout: float, start: int = 0) -> list[Seen]:
        """The first `n` messages from index `start` on that match `pred`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        found: list[Seen] = []
        i = start
        with self._cond:
            while True:
                while i < len(self.seen) and len(found) < n:
                    if pred(self.seen[i]):
                        found.append(self.seen[i])
                    i += 1
                left = deadline - time.monotonic()
                if len(found) == n:
                    return found
                if left <= 0:
                    raise TimeoutError(f"{len(found)}/{n} matching messages in {timeout:.0f} s")
                self._cond.wait(left)

    def wait_for(self, pred: Callable[[Seen], bool], timeout: float, start: int = 0) -> Seen:
        return self.collect(pred, 1, timeout, start)[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class System:
    """A fresh broker, a fake Telegram and node processes; `close()` stops them all (also on error)."""

    def __init__(self, workdir: Path, models_dir: Path) -> None:
        workdir.mkdir(parents=True)
        self.workdir, self.port = workdir, free_port()
        # The harness's accounts too: an observer that may read snapshots, a camera user for any id.
        self.files = prepare_local_broker(workdir / "data", self.port, extra=harness_accounts(T.prefix))
        self.broker = MosquittoProcess(self.files.conf, self.port, workdir / "mosquitto.log")
        self.telegram: FakeTelegram | None = None
        self.viewer: Viewer | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **os.environ,
            "HOMESEC_MQTT__HOST": "127.0.0.1",
            "HOMESEC_MQTT__PORT": str(self.port),
            "HOMESEC_DATA_DIR": str(workdir / "data"),  # node passwords are in data/secrets
            "HOMESEC_RECOGNIZER__MODELS_DIR": str(models_dir),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("HOMESEC_CONFIG", None)

    def start(self, telegram: bool) -> System:
        self.broker.start()
        if telegram:
            self.telegram = FakeTelegram().start()
            self.env.update(
                HOMESEC_TELEGRAM_TOKEN=TOKEN,
                HOMESEC_NOTIFIER__BASE_URL=self.telegram.url,
                HOMESEC_NOTIFIER__ALLOWED_CHAT_IDS=f"[{CHAT}]",
                HOMESEC_NOTIFIER__POLL_TIMEOUT_S="1",
            )
        self.viewer = Viewer(self.port, self.files.passwords["observer"])
        return self

    def spawn(self, name: str, module: str, node: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen(
            [sys.executable, "-m", module], env={**self.env, **env}, stdout=log, stderr=log, cwd=REPO
        )
        self.procs[name] = proc
        assert self.viewer is not None
        online = T.available(node)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # wait for its retained 'online', or its early death
            try:
                self.viewer.wait_for(lambda s: s.topic == online and s.payload == b"online", 0.5)
                return proc
            except TimeoutError:
                if proc.poll() is not None:
                    break
        raise RuntimeError(f"{name} did not come online (exit {proc.poll()}):\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        if self.viewer is not None:
            self.viewer.close()
        if self.telegram is not None:
            self.telegram.stop(close_socket=True)
        self.broker.stop()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def row(name: str, values_ms: list[float]) -> str:
    return (
        f"  {name:34s} p50 {pct(values_ms, 50):7.0f}  p95 {pct(values_ms, 95):7.0f}  "
        f"min {min(values_ms):6.0f}  max {max(values_ms):6.0f} ms"
    )


class OtherWork:
    """CPU used on the machine by processes other than this bench and its children, over a stretch.

    /proc/stat's busy ticks minus the ticks of our own process tree (this process, mosquitto, the
    nodes), as a share of both cores: shows whether other work competed with a measurement."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.t0, self.busy0, self.ours0 = time.monotonic(), self._busy(), self._ours()

    @staticmethod
    def _busy() -> int:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values) - values[3] - values[4]  # all but idle and iowait

    def _ours(self) -> int:
        pids = [os.getpid(), *(p.pid for p in self.system.procs.values())]
        if self.system.broker.proc is not None:
            pids.append(self.system.broker.proc.pid)
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return ticks

    def share(self) -> float:
        hz, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
        capacity = (time.monotonic() - self.t0) * hz * cores
        other = (self._busy() - self.busy0) - (self._ours() - self.ours0)
        return max(0.0, other / max(capacity, 1.0))


# ------------------------------------------------------------------------------------ (a) latency


def enroll_owner(system: System) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "homesec", "train", "owner", str(OWNER_PHOTO)],
        env=system.env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"enrolling the owner failed: {out.stdout}{out.stderr}")


def one_trial(system: System, camera: subprocess.Popen[bytes], gap_s: float) -> dict[str, float]:
    """Pulse the PIR once; return ms from the trigger to each stage's arrival (and the recognizer's time)."""
    viewer, tg = system.viewer, system.telegram
    assert viewer is not None and tg is not None
    start, photos = viewer.mark(), len(tg.ok_calls("sendPhoto"))
    t0 = time.monotonic()
    os.kill(camera.pid, signal.SIGUSR1)
    motion = viewer.wait_for(
        lambda s: s.topic == T.motion("door") and s.meta()["state"] == "start", 10, start
    )
    event = motion.meta()["event_id"]

    def of(topic: str) -> Callable[[Seen], bool]:
        return lambda s: s.topic == topic and s.meta().get("event_id") == event

    snap = viewer.wait_for(of(T.snapshot("door")), 20, start)
    result = viewer.wait_for(of(T.result("door")), 30, start)
    alert = viewer.wait_for(of(T.alert("door")), 30, start)
    tg.wait(lambda: len(tg.ok_calls("sendPhoto")) > photos, timeout=30)
    sent = tg.ok_calls("sendPhoto")[photos]
    viewer.wait_for(lambda s: of(T.motion("door"))(s) and s.meta()["state"] == "end", 20, start)
    # The notifier sends at most one message per chat per second: keep trials further apart than that.
    # The random part spreads the triggers over the phases of the frame clock and of the PIR sampling,
    # which a fixed spacing after the previous photo would lock onto.
    time.sleep(max(0.0, sent.at + gap_s + JITTER.uniform(0.0, 1.0) - time.monotonic()))
    timings = result.meta()["timings_ms"]
    assert isinstance(timings, dict)
    return {
        "motion": (motion.at - t0) * 1000,
        "snapshot": (snap.at - t0) * 1000,
        "result": (result.at - t0) * 1000,
        "alert": (alert.at - t0) * 1000,
        "telegram": (sent.at - t0) * 1000,
        "recognizer_total": float(timings.get("total", 0.0)),
    }


def bench_latency(
    system: System, settings: list[tuple[float, float]], trials: int, warmup: int, gap_s: float
) -> None:
    replay = system.workdir / "replay"
    replay.mkdir()
    for f in STRANGER:
        shutil.copy(f, replay / f.name)
    system.spawn("recognizer", "recognizer_node", "recognizer/main")
    system.spawn("notifier", "notifier_node", "notifier/main", HOMESEC_NOTIFIER__COOLDOWN_S="0")
    enroll_owner(system)
    for fps, rate in settings:
        camera = system.spawn(
            "camera", "camera_node", "camera/door",
            GPIOZERO_PIN_FACTORY="mock", HOMESEC_CAMERA__ID="door", HOMESEC_CAMERA__TRIGGER="pir",
            HOMESEC_CAMERA__REPLAY__DIR=str(replay), HOMESEC_CAMERA__REPLAY__FPS=str(fps),
            HOMESEC_CAMERA__FPS=str(fps), HOMESEC_CAMERA__PIR__SAMPLE_RATE=str(rate),
            HOMESEC_CAMERA__BURST__COUNT="1", HOMESEC_CAMERA__COOLDOWN_S="0",
            HOMESEC_CAMERA__MOTION__EVENT_GAP_S="0.3",
        )  # fmt: skip
        time.sleep(1.0)  # let gpiozero's sample queue fill before the first pulse (field notes)
        other = OtherWork(system)
        runs = [one_trial(system, camera, gap_s) for _ in range(warmup + trials)]
        busy = other.share()
        warm, runs = runs[:warmup], runs[warmup:]
        warm_ms = ", ".join(f"{w['telegram']:.0f}" for w in warm)
        print(
            f"\n(a) PIR trigger -> sendPhoto at the fake Bot API: {trials} trials (+{warmup} warm-up: "
            f"{warm_ms} ms); replay {fps:g} fps of 640x480 "
            f"JPEGs, PIR sampled at {rate:g} Hz, burst 1, recognizer threads 2; other work on the machine "
            f"{100 * busy:.0f}%"
        )
        print("  cumulative, from os.kill(SIGUSR1):")
        for key, name in (
            ("motion", "motion 'start' at the viewer"),
            ("snapshot", "snapshot at the viewer"),
            ("result", "result at the viewer"),
            ("alert", "alert at the viewer"),
            ("telegram", "sendPhoto at the fake Telegram"),
        ):
            print(row(name, [r[key] for r in runs]))
        print("  per stage:")
        stages = ("motion", "snapshot", "result", "alert", "telegram")
        for a, b in zip(("trigger", *stages), stages, strict=False):
            deltas = [r[b] - (r[a] if a != "trigger" else 0.0) for r in runs]
            print(row(f"{a} -> {b}", deltas))
        print(row("(recognizer's own timings_ms.total)", [r["recognizer_total"] for r in runs]))
        system.stop("camera")


# --------------------------------------------------------------------------------- (b) throughput


class SnapshotPublisher:
    """Publishes JPEG snapshots as the `camera` user, the way camera_node's sender does."""

    def __init__(self, port: int, password: str) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-camera", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(str(Role.CAMERA), password)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, camera: str, jpeg: bytes, meta: SnapshotMeta) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = list(meta_property(meta).items())
        props.ContentType = "image/jpeg"
        self.client.publish(T.snapshot(camera), jpeg, qos=1, properties=props)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_batch(
    system: System, pub: SnapshotPublisher, jpeg: bytes, size: tuple[int, int], k: int
) -> tuple[float, list[Seen]]:
    """Publish k snapshots of one new event at once; (seconds until the k-th result, the results)."""
    assert system.viewer is not None
    event, start = uuid.uuid4().hex, system.viewer.mark()
    t0 = time.monotonic()
    for seq in range(k):
        meta = SnapshotMeta(
            camera="bench", event_id=event, seq=seq, burst=k, trigger="manual", width=size[0], height=size[1]
        )
        pub.publish("bench", jpeg, meta)
    topic = T.result("bench")
    results = system.viewer.collect(
        lambda s: s.topic == topic and s.meta()["event_id"] == event, k, 600, start
    )
    if len({r.meta()["seq"] for r in results}) != k:
        print(f"  (note: duplicate results: seqs {sorted(int(str(r.meta()['seq'])) for r in results)})")
    return results[-1].at - t0, results


def bench_throughput(workroot: Path, models_dir: Path, k: int, variants: list[tuple[int, int]]) -> None:
    from bench.recognizer import frame  # the 1080p one-face frame of bench/recognizer.py

    images = {
        "1920x1080, one face 120 px": (frame(1920, 1080, 1, 120), (1920, 1080)),
        "640x480 demo stranger": (STRANGER[-1].read_bytes(), (640, 480)),
    }
    print(f"\n(b) recognizer throughput: {k} snapshots published at once, until all {k} results arrive")
    for replicas, threads in variants:
        system = System(workroot / f"throughput-{replicas}x{threads}", models_dir).start(telegram=False)
        pub = SnapshotPublisher(system.port, system.files.passwords[str(Role.CAMERA)])
        try:
            for i in range(1, replicas + 1):
                system.spawn(
                    f"r{i}", "recognizer_node", f"recognizer/r{i}",
                    HOMESEC_RECOGNIZER__INSTANCE=f"r{i}", HOMESEC_RECOGNIZER__THREADS=str(threads),
                    HOMESEC_RECOGNIZER__ARCHIVE__DIR=str(system.workdir / f"archive-r{i}"),
                )  # fmt: skip
            for name, (jpeg, size) in images.items():
                run_batch(system, pub, jpeg, size, 2 * replicas)  # warm-up: every replica's first runs
                other = OtherWork(system)
                seconds, results = run_batch(system, pub, jpeg, size, k)
                busy = other.share()
                totals = [float(r.meta()["timings_ms"]["total"]) for r in results]  # type: ignore[index]
                split = sorted({str(r.meta()["node"]) for r in results})
                counts = "/".join(str(sum(r.meta()["node"] == n for r in results)) for n in split)
                verdicts = sorted({str(r.meta()["verdict"]) for r in results})
                print(
                    f"  {replicas} replica(s) x {threads} thread(s)  {name:27s} {k / seconds:6.1f} snap/s "
                    f"({seconds:5.1f} s; {len(jpeg) // 1024} KB each; pipeline median {pct(totals, 50):5.0f} ms; "
                    f"split {counts}; verdicts {','.join(verdicts)}; other work {100 * busy:.0f}%)"
                )
        finally:
            pub.close()
            system.close()


def bench_service_work(models_dir: Path, runs: int = 20) -> None:
    """(c) In-process, one thread: what the recognizer service does per snapshot besides the pipeline."""
    from bench.recognizer import frame
    from recognizer_node.gallery import Gallery
    from recognizer_node.history import open_history
    from recognizer_node.pipeline import Recognizer
    from recognizer_node.settings import RecognizerSettings

    settings = RecognizerSettings(models_dir=models_dir, threads=1)
    rec = Recognizer(settings, models_dir.parent)
    images = {
        "1920x1080, one face 120 px": (frame(1920, 1080, 1, 120), (1920, 1080)),
        "640x480 demo stranger": (STRANGER[-1].read_bytes(), (640, 480)),
    }
    print(
        f"\n(c) recognizer service work per snapshot, in-process, threads 1 (median of {runs} after 3 warm-up)"
    )
    with tempfile.TemporaryDirectory() as tmp, Gallery(Path(tmp) / "gallery.sqlite3") as gallery:
        history = open_history(settings.archive, Path(tmp), rec)
        assert history is not None
        for name, (jpeg, (w, h)) in images.items():
            ms: dict[str, list[float]] = {"recognize": [], "archive": [], "annotate": []}
            for seq in range(runs + 3):
                meta = SnapshotMeta(
                    camera="x", event_id=f"e{w}", seq=seq, burst=1, trigger="manual", width=w, height=h
                )
                t0 = time.perf_counter()
                result = rec.recognize(jpeg, gallery)
                t1 = time.perf_counter()
                history.record(meta, jpeg, result)
                t2 = time.perf_counter()
                rec.annotate(jpeg, result.faces)  # only for alerts (unknown / no face)
                t3 = time.perf_counter()
                if seq >= 3:
                    for key, took in zip(ms, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                        ms[key].append(took * 1000)
            cells = "  ".join(f"{k} {pct(v, 50):5.1f} ms" for k, v in ms.items())
            total = sum(pct(v, 50) for v in ms.values())
            print(
                f"  {name:27s} {cells}  sum {total:5.1f} ms = {1000 / total:4.1f} snap/s ({result.verdict.value})"
            )
        history.close()


# ------------------------------------------------------------------------------------------- main


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of both cores busy over `seconds` (from /proc/stat): is other work running?"""

    def sample() -> tuple[int, int]:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        "?",
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({cpu}), load average {load}, CPU busy {100 * cpu_busy():.0f}% over 2 s"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=REPO / ".homesec-data" / "models")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--latency-settings", default="10:10,30:100", help="comma list of replay_fps:pir_sample_rate_hz"
    )
    parser.add_argument(
        "--gap", type=float, default=1.5, help="seconds between a sendPhoto and the next trigger"
    )
    parser.add_argument("--snapshots", type=int, default=60, help="K snapshots per throughput run")
    parser.add_argument("--variants", default="1x2,1x1,2x1", help="comma list of replicas x threads")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-service-work", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (node logs)")
    args = parser.parse_args(argv)
    if not (args.models_dir / "manifest.json").exists():
        print(
            f"no models in {args.models_dir}: run `.venv/bin/homesec models install` first", file=sys.stderr
        )
        return 2
    # SIGTERM behaves like Ctrl-C: the finally blocks below stop every child process. SIGINT is set
    # explicitly too: a shell starts background jobs with it ignored, and Python keeps it that way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake Bot API's per-request log lines
    workroot = Path(tempfile.mkdtemp(prefix="homesec-e2e-"))
    print(f"machine: {machine()}; work dir {workroot}")
    try:
        if not args.skip_latency:
            settings = [tuple(float(x) for x in s.split(":")) for s in args.latency_settings.split(",")]
            system = System(workroot / "latency", args.models_dir).start(telegram=True)
            try:
                bench_latency(system, settings, args.trials, args.warmup, args.gap)  # type: ignore[arg-type]
            except Exception:
                for name in ("camera", "recognizer", "notifier"):
                    print(f"--- {name} log tail\n{system.log_tail(name)}", file=sys.stderr)
                raise
            finally:
                system.close()
        if not args.skip_throughput:
            variants = [tuple(int(x) for x in v.split("x")) for v in args.variants.split(",")]
            bench_throughput(workroot, args.models_dir, args.snapshots, variants)  # type: ignore[arg-type]
        if not args.skip_service_work:
            bench_service_work(args.models_dir)
    except KeyboardInterrupt:
        print("interrupted; everything stopped", file=sys.stderr)
        return 130
    finally:
        print(f"machine after: {machine()}")
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
