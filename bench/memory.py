"""Recognizer memory over a set of bad images (prints figures; not a test).

    .venv/bin/python bench/memory.py [--node recognizer|notifier] [--models-dir DIR] [--keep DIR]

Generates the bad-image set (huge PNG and JPEG with a face, huge flat PNG, 16-bit, palette with
transparency, RGBA, CMYK, tiny, truncated, a decompression bomb over the pixel limit), then runs ONE
recognizer process over all of them in turn, as a running node would meet them: for each image
decode + detect + embed + match, and the annotated alert JPEG. Per image it prints the peak RSS above
the idle recognizer (models loaded and warmed up) and the RSS left afterwards. Peak RSS per image comes
from the kernel's high-water mark, reset before each image (`/proc/self/clear_refs`), so it is exact
and needs no sampling. Linux only.

`--node notifier` runs the notifier's side over the same set instead: making each image acceptable to
sendPhoto (`notifier_node.photo.fit_photo`), as it does for an alert or a /train photo.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# The repository instead of bench/ on the path: the test helpers import from this checkout.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

FACES = ROOT / "tests" / "data" / "faces"
HUGE = 6320  # the side of the PNG in the report: 40 Mpx, just under the default pixel limit


def _save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **kw)
    return out.getvalue()


def _with_face(size: int, mode: str = "RGB") -> Image.Image:
    """A flat frame with a face pasted at a tenth of its width (so detection, refine and crops all run)."""
    frame = Image.new("RGB", (size, size), (120, 130, 140))
    face = Image.open(FACES / "obama_probe.jpg").convert("RGB")
    side = size // 10
    face = face.resize((side, round(side * face.height / face.width)))
    frame.paste(face, (size // 3, size // 3))
    return frame if mode == "RGB" else frame.convert(mode)


def bad_images() -> dict[str, bytes]:
    """name -> bytes. Generated here, so nothing large is kept in the repository."""
    face_jpeg = (FACES / "obama_probe.jpg").read_bytes()
    sixteen = (np.arange(5000 * 5000, dtype=np.uint32) % 65536).astype(np.uint16).reshape(5000, 5000)
    palette = _with_face(5000).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return {
        "normal 1080p JPEG": _save(_with_face(1080), "JPEG", quality=85),
        f"huge flat PNG {HUGE}^2": _save(Image.new("RGB", (HUGE, HUGE), (90, 90, 90)), "PNG"),
        f"huge PNG {HUGE}^2 + face": _save(_with_face(HUGE), "PNG", compress_level=1),
        f"huge JPEG {HUGE}^2 + face": _save(_with_face(HUGE), "JPEG", quality=80),
        "RGB PNG 4000^2 + face (accepted)": _save(_with_face(4000), "PNG", compress_level=1),
        "RGBA PNG 2000^2 + face (accepted)": _save(_with_face(2000, "RGBA"), "PNG", compress_level=1),
        "RGBA PNG 5000^2": _save(_with_face(5000, "RGBA"), "PNG", compress_level=1),
        "palette+transparency PNG 5000^2": _save(palette, "PNG", transparency=0, compress_level=1),
        "16-bit grey PNG 5000^2": _save(Image.fromarray(sixteen), "PNG", compress_level=1),
        "CMYK JPEG 5000^2": _save(_with_face(5000, "CMYK"), "JPEG", quality=80),
        "tiny 1x1 PNG": _save(Image.new("RGB", (1, 1)), "PNG"),
        "truncated JPEG": face_jpeg[: len(face_jpeg) // 2],
        "bomb PNG 20000^2": _save(Image.new("1", (20000, 20000)), "PNG"),
    }


# ------------------------------------------------------------------------------- the measured process


def _status(field: str) -> float:
    """A VmRSS / VmHWM line of /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def recognizer_work(models_dir: Path | None) -> tuple[Callable[[bytes], str], float]:
    """What the recognizer does with a snapshot (decode, detect, embed, match, the alert photo)."""
    from recognizer_node.gallery import Gallery
    from recognizer_node.pipeline import Recognizer
    from recognizer_node.settings import RecognizerSettings

    data_dir = Path(tempfile.mkdtemp(prefix="homesec-mem-"))
    settings = RecognizerSettings(models_dir=models_dir) if models_dir else RecognizerSettings()
    rec = Recognizer(settings, models_dir.parent if models_dir else data_dir)
    gallery = Gallery(data_dir / "gallery.sqlite3")

    def work(data: bytes) -> str:
        recognition = rec.recognize(data, gallery)
        rec.annotate(data, recognition.faces)
        return f"{recognition.verdict.value}, {len(recognition.faces)} face(s)"

    return work, settings.max_image_pixels / 1e6


def notifier_work() -> tuple[Callable[[bytes], str], float]:
    """What the notifier does with a photo it sends or passes on: fit it for sendPhoto."""
    from notifier_node import photo

    def work(data: bytes) -> str:
        out = photo.fit_photo(data)
        return "unchanged" if out is data else f"re-encoded, {len(out) // 1024} KB"

    return work, getattr(photo, "MAX_DECODE_PIXELS", 0) / 1e6


def worker(directory: Path, models_dir: Path | None, node: str) -> None:
    """Runs in its own process: one JSON line per image on stdout."""
    from homesec.contract import ContractError

    work, limit_mpx = notifier_work() if node == "notifier" else recognizer_work(models_dir)
    warm = (directory / "00.bin").read_bytes()  # the normal snapshot: warm-up buffers count as idle
    for _ in range(3):
        work(warm)
    idle = _status("VmRSS")
    print(json.dumps({"idle": round(idle, 1), "limit_mpx": limit_mpx, "node": node}), flush=True)
    for path in sorted(directory.glob("*.bin")):
        name = (directory / (path.stem + ".name")).read_text()
        data = path.read_bytes()
        _reset_peak()
        t0 = time.perf_counter()
        try:
            outcome = work(data)
        except ContractError as exc:
            outcome = f"refused: {exc}"[:70]
        seconds = time.perf_counter() - t0
        peak, after = _status("VmHWM"), _status("VmRSS")
        row = {"name": name, "kb": len(data) // 1024, "peak": round(peak - idle, 1)}
        row |= {"after": round(after - idle, 1), "s": round(seconds, 2), "outcome": outcome}
        print(json.dumps(row), flush=True)


# ---------------------------------------------------------------------------------------- the report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--node", choices=("recognizer", "notifier"), default="recognizer")
    parser.add_argument("--models-dir", type=Path, default=ROOT / ".homesec-data" / "models")
    parser.add_argument("--keep", type=Path, help="write the generated images here (else a temp dir)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.models_dir, args.node)
        return 0
    directory = args.keep or Path(tempfile.mkdtemp(prefix="homesec-badimg-"))
    directory.mkdir(parents=True, exist_ok=True)
    for n, (name, data) in enumerate(bad_images().items()):
        (directory / f"{n:02d}.bin").write_bytes(data)
        (directory / f"{n:02d}.name").write_text(name)
    cmd = [sys.executable, __file__, "--worker", str(directory), "--node", args.node]
    cmd += ["--models-dir", str(args.models_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    head, rows = lines[0], lines[1:]
    print(f"{head['node']} idle RSS {head['idle']:.0f} MB; pixel limit {head['limit_mpx']:.0f} Mpx")
    print(f"{'image':34} {'KB':>6} {'peak+MB':>8} {'after+MB':>9} {'s':>5}  outcome")
    for r in rows:
        print(
            f"{r['name']:34} {r['kb']:>6} {r['peak']:>8.0f} {r['after']:>9.0f} {r['s']:>5.2f}  {r['outcome']}"
        )
    worst = max(r["peak"] for r in rows)
    print(f"worst peak: +{worst:.0f} MB over idle (goal: +100 MB)")
    return 0 if worst <= 100 else 2


if __name__ == "__main__":
    raise SystemExit(main())
