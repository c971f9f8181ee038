"""The whole system, end to end: every node a separate process, a real mosquitto, a local Telegram.

The owner is enrolled through the `train` topic (the `homesec train` command); a PIR trigger
(gpiozero's MockFactory inside the camera process, pulsed with SIGUSR1) on frames showing the owner
sends nothing; the same on a camera that sees a stranger sends exactly one photo; the recognizer is
killed and restarted in the middle of a burst, and every snapshot still gets its result.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.contract import Topics
from tests.fake_telegram import CHAT, TOKEN, FakeTelegram
from tests.mqtt_helpers import Broker, Collector

pytestmark = pytest.mark.integration

REPO = Path(__file__).parent.parent
T = Topics()
OWNER_FRAMES = sorted((REPO / "demo" / "camera").glob("1-owner-*.jpg"))[-8:]  # standing at the door
STRANGER_FRAMES = sorted((REPO / "demo" / "camera").glob("2-stranger-*.jpg"))[-8:]


def _replay_dir(tmp: Path, name: str, frames: list[Path]) -> Path:
    d = tmp / name
    d.mkdir()
    for f in frames:
        shutil.copy(f, d / f.name)
    return d


class Nodes:
    """Starts node processes with a shared environment; logs go to files shown on failure."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, module: str, **extra_env: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", module], env={**self.env, **extra_env}, stdout=log, stderr=log, cwd=REPO
        )
        self.procs[name] = proc
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.log_dir.glob("*.log")
        )

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def system(
    fresh_broker: Broker, models_dir: Path, tmp_path: Path
) -> Iterator[tuple[Nodes, FakeTelegram, Broker]]:
    telegram = FakeTelegram().start()
    env = {
        **os.environ,
        "HOMESEC_MQTT__PORT": str(fresh_broker.port),
        "HOMESEC_MQTT__KEEPALIVE_S": "5",
        "HOMESEC_MQTT__RECONNECT_MAX_S": "2",
        "HOMESEC_DATA_DIR": str(fresh_broker.directory),  # where the node passwords are
        "HOMESEC_RECOGNIZER__MODELS_DIR": str(models_dir),
        "HOMESEC_RECOGNIZER__HTTP__PORT": "0",  # any free port: 8470 may be taken on this machine
        "HOMESEC_TELEGRAM_TOKEN": TOKEN,
        "HOMESEC_NOTIFIER__BASE_URL": telegram.url,
        "HOMESEC_NOTIFIER__ALLOWED_CHAT_IDS": f"[{CHAT}]",
        "HOMESEC_NOTIFIER__POLL_TIMEOUT_S": "1",
        "GPIOZERO_PIN_FACTORY": "mock",
        "HOMESEC_CAMERA__TRIGGER": "pir",
        "HOMESEC_CAMERA__REPLAY__FPS": "5",
        "HOMESEC_CAMERA__BURST__COUNT": "3",
        "HOMESEC_CAMERA__BURST__INTERVAL_S": "0.3",
        "HOMESEC_CAMERA__COOLDOWN_S": "0",
        "HOMESEC_CAMERA__MOTION__EVENT_GAP_S": "0.5",  # a PIR pulse is one short event
        # What no recognizer answered (it was killed) is published again after this long.
        "HOMESEC_CAMERA__CONFIRM_TIMEOUT_S": "3",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("HOMESEC_CONFIG", None)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    nodes = Nodes(env, log_dir)
    yield nodes, telegram, fresh_broker
    nodes.stop_all()
    telegram.stop(close_socket=True)


def _wait_online(watch: Collector, *nodes: str, timeout: float = 60) -> None:
    want = {T.available(n) for n in nodes}
    deadline = time.monotonic() + timeout
    while want and time.monotonic() < deadline:
        msg = watch.wait_for(
            lambda m: m.topic in want and m.payload == b"online", deadline - time.monotonic()
        )
        want.discard(msg.topic)


def _cli(nodes: Nodes, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "homesec", *args],
        env=nodes.env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_owner_passes_stranger_alerts_once_and_a_recognizer_crash_loses_nothing(
    system: tuple[Nodes, FakeTelegram, Broker], tmp_path: Path
) -> None:
    nodes, telegram, broker = system
    watch = Collector(broker, T.all_available, T.all_results, T.all_snapshots, T.delivered)
    try:
        rec = nodes.start("recognizer", "recognizer_node")
        nodes.start("notifier", "notifier_node", HOMESEC_NOTIFIER__COOLDOWN_S="60")
        door = nodes.start(
            "door", "camera_node", HOMESEC_CAMERA__ID="door",
            HOMESEC_CAMERA__REPLAY__DIR=str(_replay_dir(tmp_path, "owner", OWNER_FRAMES)),
        )  # fmt: skip
        gate = nodes.start(
            "gate", "camera_node", HOMESEC_CAMERA__ID="gate",
            HOMESEC_CAMERA__REPLAY__DIR=str(_replay_dir(tmp_path, "stranger", STRANGER_FRAMES)),
        )  # fmt: skip
        _wait_online(watch, "recognizer/main", "notifier/main", "camera/door", "camera/gate")

        # 1. enroll the owner through the train topic, with the real command line (admin user, ACLs)
        trained = _cli(nodes, "train", "owner", str(REPO / "tests" / "data" / "faces" / "obama_train.jpg"))
        assert trained.returncode == 0, trained.stdout + trained.stderr
        assert "enrolled as 'owner'" in trained.stdout

        # 2. the owner at the door: three known results, nothing sent
        os.kill(door.pid, signal.SIGUSR1)
        owner_results = [
            json.loads(watch.wait_for(lambda m: m.topic == T.result("door"), 30).payload) for _ in range(3)
        ]
        assert [r["verdict"] for r in owner_results] == ["known"] * 3, owner_results
        assert all(f["label"] == "owner" for r in owner_results for f in r["faces"])
        assert len({r["event_id"] for r in owner_results}) == 1

        # 3. a stranger at the gate: one photo reaches Telegram, the later ones are grouped
        os.kill(gate.pid, signal.SIGUSR1)
        stranger = [
            json.loads(watch.wait_for(lambda m: m.topic == T.result("gate"), 30).payload) for _ in range(3)
        ]
        assert [r["verdict"] for r in stranger] == ["unknown"] * 3
        telegram.wait(lambda: len(telegram.ok_calls("sendPhoto")) >= 1, timeout=30)
        time.sleep(2)  # room for a duplicate to show up, if there were one
        photos = telegram.ok_calls("sendPhoto")
        assert len(photos) == 1, [c.fields for c in photos]
        assert photos[0].fields["chat_id"] == str(CHAT) and photos[0].files["photo"][:2] == b"\xff\xd8"
        assert "gate" in photos[0].fields["caption"]
        assert not telegram.shape_errors

        # 4. kill the recognizer in the middle of a burst; a new one picks up every snapshot
        os.kill(gate.pid, signal.SIGUSR1)
        first = watch.wait_for(lambda m: m.topic == T.snapshot("gate"), 30)
        event_id = json.loads(first.user_properties["meta"])["event_id"]
        rec.kill()
        rec.wait(10)
        watch.wait_for(lambda m: m.topic == T.available("recognizer/main") and m.payload == b"offline", 30)
        time.sleep(1.5)  # the rest of the burst arrives while no recognizer is running
        nodes.start("recognizer", "recognizer_node")
        answered: set[int] = set()
        deadline = time.monotonic() + 60
        while answered != {0, 1, 2} and time.monotonic() < deadline:
            msg = watch.wait_for(lambda m: m.topic == T.result("gate"), deadline - time.monotonic())
            result = json.loads(msg.payload)
            if result["event_id"] == event_id:
                answered.add(result["seq"])
        assert answered == {0, 1, 2}
        assert len(telegram.ok_calls("sendPhoto")) == 1  # same visitor, within the cooldown: grouped
    except AssertionError:
        print(nodes.logs())
        raise
    finally:
        watch.close()


def test_a_node_refuses_to_start_on_bad_config_with_a_clear_message(
    system: tuple[Nodes, FakeTelegram, Broker],
) -> None:
    nodes, _, _ = system
    proc = nodes.start("bad", "camera_node", HOMESEC_CAMERA__BURST__COUNT="lots")
    assert proc.wait(30) == 2
    log = (nodes.log_dir / "bad.log").read_text()
    assert "camera.burst.count" in log
