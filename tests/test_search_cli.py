"""`homesec faces search`: the exact JSON line shapes (directory and --archive) and the exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from homesec.contract import SnapshotMeta
from recognizer_node.gallery import Gallery
from recognizer_node.history import History
from recognizer_node.imageio import encode_jpeg
from recognizer_node.pipeline import Recognizer
from recognizer_node.settings import ArchiveSettings, RecognizerSettings
from tests.conftest import FACES

QUERY = str(FACES / "obama_probe.jpg")


@pytest.fixture
def data_dir(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HOMESEC_CONFIG", raising=False)
    monkeypatch.setenv("HOMESEC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOMESEC_RECOGNIZER__MODELS_DIR", str(models_dir))
    return tmp_path / "data"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    from homesec.cli import main

    code = main(["faces", "search", *argv])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_directory_search_json_lines(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("obama_train.jpg", "biden_train.jpg", "stranger.png"):
        shutil.copy(FACES / name, photos / name)
    shutil.copy(FACES / "obama_probe.jpg", photos / "sub" / "probe.jpg")
    (photos / "bad.png").write_bytes(b"nope")
    code, lines, err = run(["--query", QUERY, str(photos), "--json"], capsys)
    assert code == 0
    hits = [json.loads(line) for line in lines]
    assert [Path(h["path"]).name for h in hits] == ["probe.jpg", "obama_train.jpg"]
    assert hits[0]["path"] == str(photos / "sub" / "probe.jpg")
    for h in hits:
        assert set(h) == {"path", "similarity", "box"} and len(h["box"]) == 4
    assert hits[0]["similarity"] >= hits[1]["similarity"] >= 0.363
    assert "bad.png: skipped" in err
    assert (data_dir / "search" / "index.sqlite3").exists()
    code, lines, _ = run(["--query", QUERY, str(photos), "--json", "--threshold", "-1", "--top", "3"], capsys)
    assert code == 0 and len(lines) == 3  # --threshold -1: every face, cut to --top
    code, lines, _ = run(["--query", QUERY, str(photos), "--min-face", "300"], capsys)
    assert code == 0 and len(lines) == 1 and "probe.jpg" in lines[0]  # text form; obama_train is 239 px


def test_archive_search_json_lines(
    data_dir: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = Recognizer(RecognizerSettings(models_dir=models_dir), data_dir)
    history = History(ArchiveSettings(), data_dir, rec)
    with Gallery(tmp_path / "gallery.sqlite3") as gallery:
        for i, name in enumerate(("obama_train.jpg", "biden_train.jpg", "obama_probe.jpg")):
            data = (FACES / name).read_bytes()
            meta = SnapshotMeta(
                camera="door", event_id=f"ev{i}", seq=0, burst=1, trigger="pir", width=1, height=1,
                ts=f"2026-11-2{i}T18:00:00.000Z",
            )  # fmt: skip
            history.record(meta, data, rec.recognize(data, gallery))
    history.close()
    code, lines, _ = run(["--query", QUERY, "--archive", "--json"], capsys)
    assert code == 0
    hits = [json.loads(line) for line in lines]
    assert [h["event_id"] for h in hits] == ["ev2", "ev0"]
    for h in hits:
        assert set(h) == {"event_id", "camera", "ts", "similarity", "box", "snapshot"}
        assert h["camera"] == "door" and Path(h["snapshot"]).is_absolute() and Path(h["snapshot"]).is_file()
    assert hits[0]["ts"] == "2026-11-22T18:00:00.000Z" and hits[0]["similarity"] > 0.99
    code, lines, _ = run(["--query", QUERY, "--archive", "--top", "1"], capsys)
    assert code == 0 and len(lines) == 1 and "ev2" in lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--query", QUERY], "either a TARGET directory or --archive"),
        (["--query", QUERY, "--archive", "."], "either a TARGET directory or --archive"),
        (["--query", QUERY, QUERY], "not a directory"),
        (["--query", QUERY, "--archive"], "no archive at"),
        (["--query", "/nonexistent.jpg", "."], "cannot read"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run(argv, capsys)
    assert code == 2 and lines == [] and message in err


def test_a_query_without_a_face_exits_2(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "wall.jpg"
    blank.write_bytes(encode_jpeg(np.full((120, 160, 3), 200, np.uint8)))
    code, lines, err = run(["--query", str(blank), str(tmp_path)], capsys)
    assert code == 2 and lines == [] and "no face found in the query image" in err
