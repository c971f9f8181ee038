"""Speed benchmark (prints figures; not a test).

ms per stage and snapshots/s for synthetic 640x480 and 1920x1080 JPEG snapshots with 1 and 3 faces,
with 1 and 2 onnxruntime threads; then matching time against galleries of random embeddings.

    .venv/bin/python bench/recognizer.py [--models-dir DIR] [--runs N] [--gallery-sizes 10,10000,...]

Faces are cut from tests/data/faces and pasted at a door-camera scale (1080p: 120 px wide,
480p: 60 px) on a noisy background, JPEG quality 85. Figures are medians after warm-up, plus the
best total (the run least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recognizer_node.embeddings import unit
from recognizer_node.matching import GalleryMatrix, match_embeddings
from recognizer_node.pipeline import Recognizer
from recognizer_node.settings import RecognizerSettings

FACES = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces"
# (photo, face box in it) for the three people pasted into the frames
PEOPLE = [
    ("obama_probe.jpg", (543, 131, 900, 638)),
    ("biden_train.jpg", (421, 180, 710, 576)),
    ("stranger.png", (264, 113, 535, 497)),
]
STAGES = ("decode", "detect", "decode_full", "refine", "align", "embed", "total")


def frame(width: int, height: int, n_faces: int, face_w: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 160, width, dtype=np.float32)[None, :, None].repeat(height, 0).repeat(3, 2)
    canvas = Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))
    for i, (name, (x1, y1, x2, y2)) in enumerate(PEOPLE[:n_faces]):
        src = Image.open(FACES / name).convert("RGB")
        fw = x2 - x1
        head = src.crop((max(0, x1 - fw // 2), max(0, y1 - fw // 2), x2 + fw // 2, y2 + fw // 2))
        f = face_w / fw
        head = head.resize((round(head.width * f), round(head.height * f)), Image.Resampling.LANCZOS)
        canvas.paste(head, (int((i + 0.5) * width / 3 - head.width / 2), int(height * 0.2)))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=85)
    return out.getvalue()


def bench_pipeline(models_dir: Path, runs: int) -> None:
    print(f"pipeline (median of {runs} runs after 3 warm-up; ms)")
    header = "  size       faces thr  " + " ".join(f"{s:>11s}" for s in STAGES) + "   snap/s  best total"
    print(header)
    for threads in (1, 2):
        rec = Recognizer(RecognizerSettings(models_dir=models_dir, threads=threads), models_dir.parent)
        for w, h, face_w in ((640, 480, 60), (1920, 1080, 120)):
            for n in (1, 3):
                data = frame(w, h, n, face_w)
                for _ in range(3):
                    rec.analyze(data)
                timings = [rec.analyze(data).timings_ms for _ in range(runs)]
                found = len(rec.analyze(data).faces)
                med = {s: statistics.median(t.get(s, 0.0) for t in timings) for s in STAGES}
                cells = " ".join(f"{med[s]:11.1f}" for s in STAGES)
                note = "" if found == n else f"  (found {found} faces)"
                best = min(t["total"] for t in timings)  # the least disturbed run
                print(
                    f"  {w}x{h:<5d} {n:5d} {threads:3d}  {cells} {1000 / med['total']:8.1f} {best:11.1f}{note}"
                )


def bench_matching(sizes: list[int], runs: int) -> None:
    print("\nmatching one face against N enrollments (5 per label; median ms)")
    rng = np.random.default_rng(0)
    for n in sizes:
        emb = rng.standard_normal((n, 128), dtype=np.float32)
        emb = unit(emb)
        labels = [f"p{i // 5}" for i in range(n)]
        t0 = time.perf_counter()
        gallery = GalleryMatrix.build(emb, labels, np.arange(n))
        build = (time.perf_counter() - t0) * 1000
        del emb
        probe = gallery.embeddings[n // 2][None, :].copy()
        match_embeddings(probe, gallery, 0.363, 0.05)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            (m,) = match_embeddings(probe, gallery, 0.363, 0.05)
            times.append((time.perf_counter() - t) * 1000)
        assert m.similarity is not None and m.similarity > 0.99  # found itself
        print(
            f"  {n:>9,d} enrollments: {statistics.median(times):8.2f} ms  (matrix build {build:,.0f} ms, once)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=Path(".homesec-data/models"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--gallery-sizes", default="10,10000,100000,1000000")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args(argv)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (other work on the machine slows every figure)")
    if not args.skip_pipeline:
        bench_pipeline(args.models_dir, args.runs)
    bench_matching([int(s) for s in args.gallery_sizes.split(",")], args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
