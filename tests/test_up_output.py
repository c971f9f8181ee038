"""`homesec up` whose output goes nowhere any more (`homesec up | tee up.log`, Ctrl-C: the terminal's
SIGINT ends `tee` too) still stops what it started: no broker or node is left running without it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_until

REPO = Path(__file__).parent.parent


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    """`pid` exists and is not a zombie (a child `up` has not reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.integration
def test_ctrl_c_with_the_output_pipe_gone_still_stops_every_child(tmp_path: Path, models_dir: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESEC_")}
    env.update(
        HOMESEC_DATA_DIR=str(data),
        HOMESEC_RECOGNIZER__MODELS_DIR=str(models_dir),
        HOMESEC_TELEGRAM_TOKEN="",
        HOMESEC_RECOGNIZER__HTTP__PORT="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "homesec", "up", "--no-enroll"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a pipeline
    )
    children: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # `tee` reading, until every node was started
            if "find this broker" in line:
                break
        else:
            raise AssertionError("up ended before it started its nodes")
        children = _children(proc.pid)
        assert len(children) >= 4, children  # mosquitto and the nodes
        proc.stdout.close()  # `tee` is gone: every line `up` prints from now on meets a closed pipe
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
        wait_until(lambda: not any(_running(c) for c in children), timeout=10)
        assert not (data / "broker" / "port").exists()
    finally:
        for child in children:  # what the old `up` left behind: the test's own processes, by pid
            if _running(child):
                os.kill(child, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
