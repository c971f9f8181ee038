"""`homesec up`: what each node's environment holds, and a broker that dies is started again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.broker import MosquittoProcess, port_open
from homesec.cliutil import local_broker_port
from homesec.config import load_config
from homesec.contract import Role, Topics
from homesec.remote import RemoteClient
from homesec.up import node_envs, pick_port

REPO = Path(__file__).parent.parent
SECRETS = {
    "HOMESEC_TELEGRAM_TOKEN": "123:telegram",
    "HOMESEC_TELEGRAM_TOKEN_FILE": "/run/secrets/telegram",
    "HOMESEC_MQTT_PASSWORD": "the-shell's",
    "HOMESEC_MQTT_SHARE_GROUP": "group",
}


def test_each_node_gets_only_its_own_secrets(tmp_path: Path) -> None:
    environ = {"PATH": "/usr/bin", "HOMESEC_CAMERA__FPS": "5", **SECRETS}
    local = load_config(None, env={"HOMESEC_DATA_DIR": str(tmp_path)})
    envs = node_envs(local, None, environ)
    assert set(envs) == {"camera", "recognizer", "notifier", "homeassistant"}
    for section, env in envs.items():
        secrets = {k for k in SECRETS if k in env}
        assert secrets == (
            {"HOMESEC_TELEGRAM_TOKEN", "HOMESEC_TELEGRAM_TOKEN_FILE"} if section == "notifier" else set()
        )
        assert env["PATH"] == "/usr/bin" and env["HOMESEC_CAMERA__FPS"] == "5"
        assert env["HOMESEC_DATA_DIR"] == str(tmp_path)
    # each node finds its own MQTT password (and the recognizer its group) in the data dir, by user
    assert "HOMESEC_MQTT_PASSWORD" not in envs["camera"]


class Up:
    """`homesec up` as a child process; its printed lines are collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "homesec", "up", "--no-enroll"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            umask=0o022,  # a usual shell's: `up` must not let it through
            start_new_session=True,  # a process group of its own, as a terminal gives a command
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip())
                self.changed.notify_all()

    def wait_line(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if m := regex.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"no line matching {pattern!r}; up printed:\n" + "\n".join(self.lines)
                    )
                self.changed.wait(left)

    def ctrl_c(self) -> int:
        """What a terminal does on Ctrl-C: SIGINT to every process of the foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _mosquitto_child(pid: int) -> int:
    for child in _children(pid):
        if "mosquitto" in Path(f"/proc/{child}/cmdline").read_text():
            return child
    raise AssertionError("up runs no mosquitto")


@pytest.fixture
def up(tmp_path: Path, models_dir: Path) -> Iterator[tuple[Up, Path]]:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESEC_")}
    env.update(
        HOMESEC_DATA_DIR=str(data),
        HOMESEC_RECOGNIZER__MODELS_DIR=str(models_dir),
        HOMESEC_TELEGRAM_TOKEN="",  # alerts go to the outbox
        HOMESEC_MQTT__RECONNECT_MAX_S="2",
        HOMESEC_RECOGNIZER__HTTP__PORT="0",  # any free port: 8470 may be taken on this machine
    )
    up = Up(env)
    yield up, data
    up.stop()


@pytest.mark.integration
def test_up_restarts_a_killed_broker_on_its_port(up: tuple[Up, Path]) -> None:
    proc, _data = up
    port = int(proc.wait_line(r"mosquitto on 127\.0\.0\.1:(\d+)").group(1))
    broker = _mosquitto_child(proc.proc.pid)
    os.kill(broker, signal.SIGKILL)
    proc.wait_line(r"mosquitto exited with code -9; restarting it on port " + str(port))
    proc.wait_line(r"mosquitto is back")
    assert port_open("127.0.0.1", port) and _mosquitto_child(proc.proc.pid) != broker


def _loose(data: Path) -> list[str]:
    """Paths under `data` that someone other than their owner could read or enter."""
    loose = []
    for path in [data, *data.rglob("*")]:
        mode = path.lstat().st_mode & 0o777
        if path.is_symlink():
            continue
        # The broker's account file holds only password hashes, inside the private data dir: readable so
        # the docker image's broker (its own uid) can load it.
        allowed = 0o644 if path.name == "dynamic-security.json" else 0o700 if path.is_dir() else 0o600
        if mode & ~allowed:
            loose.append(f"{oct(mode)} {path.relative_to(data)}")
    return loose


@pytest.mark.integration
def test_up_keeps_every_file_private_under_a_loose_umask(up: tuple[Up, Path]) -> None:
    proc, data = up
    proc.wait_line(r"alert \w+ from door sent to the outbox", timeout=90)  # the demo's stranger
    kinds = {p.suffix for p in data.rglob("*") if p.is_file()}
    assert {".jpg", ".json", ".password", ".db", ".log"} <= kinds, kinds
    assert any(p.name.endswith("-wal") for p in data.rglob("*")), "no SQLite WAL open while running"
    assert _loose(data) == []
    proc.stop()
    assert _loose(data) == []


def test_a_taken_default_port_is_replaced_and_said_a_taken_chosen_one_is_refused() -> None:
    import socket

    from homesec.cliutil import CliError

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        port, note = pick_port(None, preferred=taken)
        assert port != taken and note == f"port {taken} is taken, so this run's broker listens on port {port}"
        with pytest.raises(CliError, match=f"port {taken} is taken .*choose a free one with --port"):
            pick_port(taken)


def test_up_on_a_taken_port_says_so_without_a_traceback(tmp_path: Path) -> None:
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESEC_")}
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "homesec", "up", "--port", str(taken)],
            env={**env, "HOMESEC_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"homesec: port {taken} is taken"), done.stderr


@pytest.mark.integration
def test_ctrl_c_stops_the_nodes_before_the_broker_and_names_the_port_everywhere(
    up: tuple[Up, Path],
) -> None:
    proc, data = up
    port = int(proc.wait_line(r"mosquitto on 127\.0\.0\.1:(\d+)").group(1))
    nodes = ("camera/door", "recognizer/main", "notifier/main", "habridge/main")
    for node in nodes:  # each online first: one stopped before it said so would have no `stopped` either
        proc.wait_line(rf"\[{node}\] online", timeout=90)
    recipe = proc.wait_line(r"watch the bus on port (\d+): (mosquitto_sub .*)")
    assert int(recipe.group(1)) == port and f"-p {port} " in recipe.group(2)
    assert "-T 'homesec/train/+'" in recipe.group(2)
    assert int(proc.wait_line(r"find this broker \(port (\d+)\)").group(1)) == port
    for line in proc.lines:  # no line names another port than the broker's
        assert all(int(p) == port for p in re.findall(r"(?:port |:|-p )(\d{4,5})\b", line)), line
    assert local_broker_port(data) == port
    assert proc.ctrl_c() == 0
    assert not (data / "broker" / "port").exists()  # the port is no one's any more
    # The broker saved what it held when it stopped: start it again and read each node's last word.
    broker = MosquittoProcess(data / "broker" / "mosquitto.conf", port, data / "after.log")
    broker.start()
    try:
        config = load_config(None, env={"HOMESEC_DATA_DIR": str(data), "HOMESEC_MQTT__PORT": str(port)})
        with RemoteClient(config, role=Role.VIEWER) as viewer:
            t = Topics()
            last = {t.node_from_available(m.topic): m.payload for m in viewer.retained(t.all_available)}
    finally:
        broker.stop()
    assert last == {n: b"stopped" for n in nodes}
