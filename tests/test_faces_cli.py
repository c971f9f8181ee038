"""`homesec faces embed|verify` and `homesec models verify`: exact output shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FACES


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from homesec.cli import main

    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def md(models_dir: Path) -> list[str]:
    return ["--models-dir", str(models_dir)]


def test_embed_json_one_line_per_image_and_keeps_going(
    md: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    images = [str(FACES / "two_faces.jpg"), str(bad), str(FACES / "stranger.png")]
    code, out, _ = run(["faces", "embed", *images, "--json", *md], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1  # one image failed; the others were still embedded
    assert [line["path"] for line in lines] == images
    group, error, single = lines
    assert set(error) == {"path", "error"} and "not an image" in error["error"]
    assert len(group["faces"]) == 3 and len(single["faces"]) == 1
    for face in group["faces"] + single["faces"]:
        assert set(face) == {"box", "score", "landmarks", "embedding"}
        x1, y1, x2, y2 = face["box"]
        assert x2 > x1 and y2 > y1
        assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
        assert len(face["embedding"]) == 128 and 0 < face["score"] <= 1
    widths = [f["box"][2] - f["box"][0] for f in group["faces"]]
    assert widths[0] >= widths[-1]  # largest face first


def test_embed_all_good_exits_zero_and_has_a_human_form(
    md: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["faces", "embed", str(FACES / "obama_probe.jpg"), *md], capsys)
    assert code == 0
    assert out.startswith(f"{FACES / 'obama_probe.jpg'}: 1 face\n  #1 box (")


def test_verify_json(md: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["faces", "verify", str(FACES / "obama_train.jpg"), str(FACES / "obama_probe.jpg"), "--json", *md],
        capsys,
    )
    same = json.loads(out)
    assert code == 0 and set(same) == {"similarity", "threshold", "same_person"}
    assert same["same_person"] is True and same["similarity"] > same["threshold"]
    code, out, _ = run(
        ["faces", "verify", str(FACES / "obama_train.jpg"), str(FACES / "biden_train.jpg"), "--json", *md],
        capsys,
    )
    assert code == 0 and json.loads(out)["same_person"] is False
    code, out, _ = run(
        ["faces", "verify", str(FACES / "obama_train.jpg"), str(FACES / "stranger.png"), *md], capsys
    )
    assert out.startswith("different people: similarity ")


def test_verify_without_a_face_exits_2_with_a_clear_message(
    md: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    empty = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (200, 200, 190)).save(empty)
    code, out, err = run(
        ["faces", "verify", str(FACES / "obama_train.jpg"), str(empty), "--json", *md], capsys
    )
    assert code == 2 and out == ""
    assert f"no face found in {empty}" in err


def test_models_verify(md: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "verify", *md], capsys)
    assert code == 0 and out.count("ok  ") == 2
    code, _, err = run(["models", "verify", "--models-dir", str(tmp_path)], capsys)
    assert code == 1 and "run `homesec models install`" in err


def test_module_shim_runs_the_same_commands(md: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from recognizer_node.cli import main

    assert main(["faces", "verify", str(FACES / "obama_train.jpg"), str(FACES / "obama_probe.jpg"), *md]) == 0
    assert capsys.readouterr().out.startswith("same person: similarity ")
