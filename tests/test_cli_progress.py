"""Progress bars: on a terminal for `faces search`, `models install` and re-embedding the gallery;
nothing extra when stderr is not a terminal, or with `--json`."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from homesec.contract import Training
from tests.conftest import FACES, open_ops

if TYPE_CHECKING:
    from recognizer_node.pipeline import Recognizer

BAR = "photos:"  # tqdm's description, written at the bar's first drawing


def _stderr_of(argv: list[str], env: dict[str, str], terminal: bool) -> str:
    """The command's stderr, from a pseudo-terminal (as at a shell) or from a pipe."""
    if not terminal:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    assert proc.wait(60) == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture
def search(tmp_path: Path, models_dir: Path) -> tuple[list[str], dict[str, str]]:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama_train.jpg", "biden_train.jpg", "rose_a.jpg"):
        shutil.copy(FACES / name, photos / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESEC_")}
    env.update(HOMESEC_DATA_DIR=str(tmp_path / "data"), HOMESEC_RECOGNIZER__MODELS_DIR=str(models_dir))
    argv = [sys.executable, "-m", "homesec", "faces", "search", "--query", str(FACES / "obama_probe.jpg")]
    return [*argv, str(photos)], env


def test_faces_search_shows_a_bar_on_a_terminal_only(search: tuple[list[str], dict[str, str]]) -> None:
    argv, env = search
    shown = _stderr_of(argv, env, terminal=True)
    assert BAR in shown and "/3 [" in shown, shown  # tqdm draws at most every 0.1 s: not each step
    assert BAR not in _stderr_of(argv, env, terminal=False)
    assert BAR not in _stderr_of([*argv, "--json"], env, terminal=True)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_models_install_and_reembedding_tick_on_a_terminal(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from homesec.cli import main
    from recognizer_node.models import DERIVED

    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    for name in DERIVED:  # the copies are made again from the intact upstream files: no download
        (target / name).unlink()
    monkeypatch.delenv("HOMESEC_CONFIG", raising=False)
    monkeypatch.setenv("HOMESEC_DATA_DIR", str(tmp_path / "data"))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["models", "install", "--models-dir", str(target)]) == 0
    assert "models: " in terminal.getvalue() and "/4 [" in terminal.getvalue(), terminal.getvalue()

    from recognizer_node.progress import progress_wanted

    assert progress_wanted() and not progress_wanted(as_json=True)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert not progress_wanted()


def test_reembedding_the_gallery_shows_a_bar_on_a_terminal(
    tmp_path: Path, rec: Recognizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        photo = (FACES / "obama_train.jpg").read_bytes()
        assert ops.train(Training(request_id="t1", label="obama", image=photo)).ok
    finally:
        ops.close()
    with sqlite3.connect(rec.settings.resolve_gallery_path(tmp_path)) as db:  # made by an older model
        db.execute("UPDATE enrollments SET model = 'an-older-model'")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    open_ops(tmp_path, rec).close()
    assert "re-embedding the gallery:" in terminal.getvalue() and "/1 [" in terminal.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    with sqlite3.connect(rec.settings.resolve_gallery_path(tmp_path)) as db:
        db.execute("UPDATE enrollments SET model = 'an-older-model'")
    open_ops(tmp_path, rec).close()
    assert quiet.getvalue() == ""
