"""What each fault costs the household, counted on real processes (prints a table; not a test).

    .venv/bin/python bench/faults.py [--snapshots 20] [--backlog 1500] [--flood 500] [--only NAME,...]
        [--keep DIR]

Each scenario gets a fresh system: a real mosquitto on a free loopback port with the project's rendered
config and accounts (tests/mqtt_helpers.Broker), the fake Bot API server (tests/fake_telegram.py), and
the nodes as separate processes (`python -m camera_node|recognizer_node|notifier_node`, configured by
environment overrides as in tests/test_e2e.py). The camera replays the demo stranger with
trigger = manual; the harness asks it for bursts (`camera/door/cmd/capture`, as `homesec capture` does),
so every snapshot should give exactly one result and one Telegram photo (a capture someone asked for
always alerts). Then the fault is injected, the system is left to recover, and the scenario stops by
itself once every photo arrived or nothing moved for `--quiet` seconds (bounded by `--deadline`).

Columns (counted by an observer client with a persistent session, and at the fake Telegram):
  published   snapshots the camera was asked for
  results     distinct (event_id, seq) with a recognition result
  alerts      photos Telegram received
  duplicates  photos beyond one per alerted snapshot (the note also counts result messages repeated for
              a republished snapshot: the same result again, and its alert under the same key)
  lost        snapshots without a result + snapshots with a result but no photo
"""

from __future__ import annotations

import argparse
import builtins
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The repository instead of bench/ on the path: the test helpers import from this checkout.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "bench")]

DISK_FULL_FLAG = "HOMESEC_BENCH_DISK_FULL_FLAG"


# ----------------------------------------------------------- a node on a (simulated) full disk


def run_node_on_full_disk(module: str) -> None:
    """Run `module` as __main__ with every write under its data dir failing with ENOSPC while the flag
    file exists (there is no full disk to be had here; this is what the node would see on one)."""
    import io
    import runpy

    flag = Path(os.environ[DISK_FULL_FLAG])
    data_dir = os.path.realpath(os.environ["HOMESEC_DATA_DIR"])
    real_open, real_os_open = builtins.open, os.open

    def full(path: object) -> bool:
        return flag.exists() and os.path.realpath(str(path)).startswith(data_dir) and path != str(flag)

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+") and isinstance(file, (str, Path)) and full(file):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and full(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open = io.open = guarded_open
    os.open = guarded_os_open
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


# -------------------------------------------------------------------------------------- the system


@dataclass
class Counts:
    published: int = 0
    result_msgs: int = 0
    results: set[tuple[str, int]] = field(default_factory=set)
    alerted: set[tuple[str, int]] = field(default_factory=set)
    photos: int = 0
    note: str = ""

    @property
    def duplicates(self) -> int:
        """Photos beyond one per alerted snapshot: what the household would see twice."""
        return max(0, self.photos - len(self.alerted))

    @property
    def repeated_results(self) -> int:
        """Result messages beyond one per snapshot: a republished snapshot is answered with its result
        again (the same result, no alert), so these are expected after a fault, and harmless."""
        return self.result_msgs - len(self.results)

    alerts_expected: bool = True  # every snapshot of a capture someone asked for alerts

    @property
    def lost(self) -> int:
        """Snapshots without a result, and (when each should alert) results without a photo."""
        unrecognized = max(0, self.published - len(self.results))
        if not self.alerts_expected:
            return unrecognized
        distinct_photos = self.photos - max(0, self.photos - len(self.alerted))
        return unrecognized + max(0, len(self.results) - distinct_photos)


class System:
    """A broker, a fake Telegram, an observer and node processes; `close()` ends them all."""

    def __init__(self, workdir: Path, models_dir: Path, telegram: bool = True) -> None:
        from tests.fake_telegram import CHAT, TOKEN, FakeTelegram
        from tests.mqtt_helpers import Broker

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.broker = Broker(workdir / "data")
        self.broker.start()
        self.telegram = FakeTelegram().start() if telegram else None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        replay = workdir / "replay"
        replay.mkdir(exist_ok=True)
        for f in sorted((REPO / "demo" / "camera").glob("2-stranger-*.jpg"))[-4:]:
            shutil.copy(f, replay / f.name)
        self.env = {
            **os.environ,
            "HOMESEC_MQTT__HOST": "127.0.0.1",
            "HOMESEC_MQTT__PORT": str(self.broker.port),
            "HOMESEC_MQTT__KEEPALIVE_S": "5",
            "HOMESEC_MQTT__RECONNECT_MAX_S": "2",
            "HOMESEC_DATA_DIR": str(workdir / "data"),
            "HOMESEC_RECOGNIZER__MODELS_DIR": str(models_dir),
            "HOMESEC_CAMERA__TRIGGER": "manual",
            "HOMESEC_CAMERA__RESOLUTION": "[640, 480]",
            "HOMESEC_CAMERA__REPLAY__DIR": str(replay),
            "HOMESEC_CAMERA__REPLAY__FPS": "20",
            "HOMESEC_CAMERA__BURST__INTERVAL_S": "0",
            "HOMESEC_CAMERA__CONFIRM_TIMEOUT_S": "10",
            "HOMESEC_CAMERA__SPOOL__MAX_ITEMS": "5000",
            "HOMESEC_NOTIFIER__COOLDOWN_S": "0",
            "PYTHONUNBUFFERED": "1",
        }
        if self.telegram is not None:
            self.env |= {
                "HOMESEC_TELEGRAM_TOKEN": TOKEN,
                "HOMESEC_NOTIFIER__BASE_URL": self.telegram.url,
                "HOMESEC_NOTIFIER__ALLOWED_CHAT_IDS": f"[{CHAT}]",
                "HOMESEC_NOTIFIER__POLL_TIMEOUT_S": "1",
            }
        self.env.pop("HOMESEC_CONFIG", None)
        self.counts = Counts()
        self._lock = threading.Lock()
        self._online: set[str] = set()
        self._changed = threading.Condition(self._lock)
        self._observer = self._observe()
        self._admin = self.broker.bus("admin", "admin/bench", persistent=False, announce=False)
        self._admin.start()

    def _observe(self) -> Any:
        from homesec.contract import Topics

        t = Topics()
        bus = self.broker.bus("observer", "test/bench-observer", persistent=True, announce=False)
        bus.subscribe(t.all_results, self._on_result)
        bus.subscribe(t.all_alerts, self._on_alert)
        bus.subscribe(t.all_available, self._on_available)
        bus.start()
        if not bus.wait_connected(10):
            raise RuntimeError("the observer could not connect")
        return bus

    def _on_result(self, msg: Any) -> None:
        body = json.loads(msg.payload)
        with self._changed:
            self.counts.result_msgs += 1
            self.counts.results.add((body["event_id"], body["seq"]))
            self._changed.notify_all()

    def _on_alert(self, msg: Any) -> None:
        meta = json.loads(msg.user_properties.get("meta", "{}"))
        with self._changed:
            self.counts.alerted.add((meta.get("event_id"), meta.get("seq")))
            self._changed.notify_all()

    def _on_available(self, msg: Any) -> None:
        node = msg.topic.split("/", 1)[1].rsplit("/", 1)[0]
        with self._changed:
            (self._online.add if msg.payload == b"online" else self._online.discard)(node)
            self._changed.notify_all()

    # -- nodes
    def spawn(self, name: str, module: str, node: str, *, full_disk: Path | None = None, **env: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        cmd = [sys.executable, "-m", module]
        extra = dict(env)
        if full_disk is not None:
            cmd = [sys.executable, __file__, "--full-disk-node", module]
            extra[DISK_FULL_FLAG] = str(full_disk)
        with self._changed:
            self._online.discard(node)
        self.procs[name] = subprocess.Popen(cmd, env={**self.env, **extra}, stdout=log, stderr=log, cwd=REPO)
        if not self.wait(lambda: node in self._online, 90):
            raise RuntimeError(f"{name} did not come online:\n{self.tail(name)}")

    def signal(self, name: str, sig: signal.Signals) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def tail(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # -- the household
    def capture(self, n: int) -> None:
        """Ask the camera for `n` snapshots, in bursts of at most 20."""
        from homesec.contract import CaptureCommand, Topics

        while n > 0:
            burst = min(20, n)
            self._admin.publish(Topics().camera_cmd_capture("door"), CaptureCommand(burst=burst))
            with self._changed:
                self.counts.published += burst
            n -= burst

    def photos(self) -> int:
        return len(self.telegram.ok_calls("sendPhoto")) if self.telegram else 0

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
                self.counts.photos = self.photos()
            return True

    def settle(self, quiet: float, deadline: float, alerts: bool = True) -> None:
        """Until every snapshot has its result (and photo), or nothing moved for `quiet` s."""
        end = time.monotonic() + deadline
        last, still_since = None, time.monotonic()
        while time.monotonic() < end:
            self.counts.photos = self.photos()
            c = self.counts
            if len(c.results) >= c.published and (not alerts or c.photos >= c.published):
                return
            state = (c.result_msgs, len(c.alerted), c.photos)
            if state != last:
                last, still_since = state, time.monotonic()
            elif time.monotonic() - still_since > quiet:
                return
            time.sleep(0.5)

    def close(self) -> None:
        for name in list(self.procs):
            self.signal(name, signal.SIGTERM)
        for bus in (self._observer, self._admin):
            bus.stop()
        if self.telegram is not None:
            self.telegram.stop(close_socket=True)
        self.broker.stop()


# ------------------------------------------------------------------------------------- scenarios

Scenario = Callable[[System, argparse.Namespace], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return register


def chain(s: System, *, recognizer: bool = True, notifier: bool = True) -> None:
    if recognizer:
        s.spawn("recognizer", "recognizer_node", "recognizer/main")
    if notifier:
        s.spawn("notifier", "notifier_node", "notifier/main")
    s.spawn("camera", "camera_node", "camera/door")


def results_at_least(s: System, n: int) -> Callable[[], bool]:
    return lambda: len(s.counts.results) >= n


def broker_restart_with_backlog(s: System, args: argparse.Namespace, sig: signal.Signals) -> None:
    chain(s, recognizer=False)
    s.capture(args.snapshots)
    # the camera publishes the backlog (20 frames/s), the broker acknowledges and queues it; the
    # SIGKILL comes soon after the last PUBACK, before the broker's next save would
    time.sleep(args.snapshots / 20 + (0.5 if sig == signal.SIGKILL else 3))
    if sig == signal.SIGKILL:
        s.broker.kill()
    else:
        s.broker.stop()
    s.broker.start()
    s.spawn("recognizer", "recognizer_node", "recognizer/main")
    s.settle(args.quiet, args.deadline)


@scenario("broker SIGTERM, backlog queued")
def broker_sigterm(s: System, args: argparse.Namespace) -> None:
    broker_restart_with_backlog(s, args, signal.SIGTERM)


@scenario("broker SIGKILL, backlog queued")
def broker_sigkill(s: System, args: argparse.Namespace) -> None:
    broker_restart_with_backlog(s, args, signal.SIGKILL)


@scenario("recognizer SIGKILL mid-burst")
def recognizer_kill(s: System, args: argparse.Namespace) -> None:
    chain(s)
    s.capture(args.snapshots)
    s.wait(results_at_least(s, 3), 60)
    s.signal("recognizer", signal.SIGKILL)
    s.spawn("recognizer", "recognizer_node", "recognizer/main")
    s.settle(args.quiet, args.deadline)


@scenario("notifier SIGKILL mid-delivery")
def notifier_kill(s: System, args: argparse.Namespace) -> None:
    chain(s)
    s.capture(args.snapshots)
    s.wait(lambda: s.photos() >= 3, 60)
    s.signal("notifier", signal.SIGKILL)
    s.spawn("notifier", "notifier_node", "notifier/main")
    s.settle(args.quiet, args.deadline)


@scenario("one of two replicas killed")
def replica_killed(s: System, args: argparse.Namespace) -> None:
    s.spawn("r2", "recognizer_node", "recognizer/r2", HOMESEC_RECOGNIZER__INSTANCE="r2",
            HOMESEC_RECOGNIZER__ARCHIVE__DIR=str(s.workdir / "archive-r2"))  # fmt: skip
    chain(s)
    s.capture(args.snapshots)
    s.wait(results_at_least(s, 3), 60)
    s.signal("r2", signal.SIGKILL)  # and it stays down
    s.settle(args.quiet, args.deadline)


@scenario("notifier disk full (simulated)")
def notifier_disk_full(s: System, args: argparse.Namespace) -> None:
    flag = s.workdir / "disk-full"
    flag.touch()
    s.spawn("recognizer", "recognizer_node", "recognizer/main")
    s.spawn("notifier", "notifier_node", "notifier/main", full_disk=flag)
    s.spawn("camera", "camera_node", "camera/door")
    s.capture(args.snapshots)
    s.wait(results_at_least(s, args.snapshots), 60)
    time.sleep(5)
    during = s.photos()
    flag.unlink()  # space freed
    s.settle(args.quiet, args.deadline)
    s.counts.note = f"{during} photos while full"


@scenario("1500-snapshot backlog")
def big_backlog(s: System, args: argparse.Namespace) -> None:
    chain(s, recognizer=False, notifier=False)
    s.capture(args.backlog)
    time.sleep(10)
    s.spawn("recognizer", "recognizer_node", "recognizer/main")
    s.settle(args.quiet, args.deadline * 3, alerts=False)
    s.counts.alerts_expected = False
    s.counts.note = "no notifier (results only)"


@scenario("foreign-chat flood")
def foreign_flood(s: System, args: argparse.Namespace) -> None:
    from tests.fake_telegram import CHAT, say

    assert s.telegram is not None
    s.telegram.chats.add(CHAT + 1)  # a real chat, that the bot could answer
    s.spawn("notifier", "notifier_node", "notifier/main")
    for _ in range(args.flood):
        say(s.telegram, "/status", chat=CHAT + 1)
    time.sleep(2)
    t0 = time.monotonic()
    say(s.telegram, "/status")
    owner = s.wait(lambda: len(s.telegram.texts(CHAT)) > 0, args.deadline)  # type: ignore[union-attr]
    waited = time.monotonic() - t0
    time.sleep(3)
    refusals = len(s.telegram.texts(CHAT + 1))
    s.counts.note = f"{args.flood} foreign msgs -> {refusals} refusals; owner's /status " + (
        f"answered in {waited:.1f} s" if owner else f"unanswered after {args.deadline:.0f} s"
    )


# ------------------------------------------------------------------------------------------ main


@contextmanager
def workroot(keep: Path | None) -> Iterator[Path]:
    root = keep or Path(tempfile.mkdtemp(prefix="homesec-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=20, help="snapshots per scenario")
    parser.add_argument("--backlog", type=int, default=1500)
    parser.add_argument("--flood", type=int, default=500)
    parser.add_argument("--quiet", type=float, default=30.0, help="stop after this long without progress")
    parser.add_argument("--deadline", type=float, default=120.0, help="longest wait per scenario")
    parser.add_argument("--only", help="comma-separated scenario names (substrings)")
    parser.add_argument("--models-dir", type=Path, default=REPO / ".homesec-data" / "models")
    parser.add_argument("--keep", type=Path, help="keep the work dirs (logs) here")
    parser.add_argument("--full-disk-node", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("homesec").setLevel(logging.ERROR)  # the harness's own clients reconnect noisily
    if args.full_disk_node:
        run_node_on_full_disk(args.full_disk_node)
        return 0
    names = [n for n in SCENARIOS if not args.only or any(o in n for o in args.only.split(","))]
    print(f"{'fault':34} {'published':>9} {'results':>7} {'alerts':>6} {'duplicates':>10} {'lost':>5}  note")
    with workroot(args.keep) as root:
        for n, name in enumerate(names):
            system = None
            try:
                system = System(root / f"{n}", args.models_dir, telegram=True)
                SCENARIOS[name](system, args)
                c = system.counts
                c.photos = system.photos()
                counted = f"{len(c.alerted)} alerts published, {c.repeated_results} results repeated"
                note = "; ".join(x for x in (counted if c.published else "", c.note) if x)
                print(f"{name:34} {c.published:>9} {len(c.results):>7} {c.photos:>6} {c.duplicates:>10} "
                      f"{c.lost:>5}  {note}", flush=True)  # fmt: skip
            except Exception as exc:  # one broken scenario must not hide the others' figures
                print(f"{name:34} did not run: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            finally:
                if system is not None:
                    system.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
