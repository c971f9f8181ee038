"""Speed benchmark (prints figures; not a test).

ms per stage and snapshots/s for synthetic 640x480 and 1920x1080 JPEG snapshots with 1 and 3 faces,
with 1 and 2 onnxruntime threads; the embedder alone (one face, three faces in one inference, three
one by one); then matching time against galleries of random embeddings.

    .venv/bin/python bench/recognizer.py [--models-dir DIR [--models-dir DIR2]] [--runs N]
        [--gallery-sizes 10,10000,...] [--skip-pipeline] [--skip-embedder] [--in-order] [--threads 1,2]

Faces are cut from tests/data/faces and pasted at a door-camera scale (1080p: 120 px wide,
480p: 60 px) on a noisy background, JPEG quality 85. Figures are medians after warm-up, plus the
best total (the run least disturbed by other work on the machine). With two `--models-dir` (say, an
older install kept aside), their runs alternate, so that other work on the machine slows both alike.
`--in-order` alternates the pipeline as it runs (the full pixels decoded on another thread during the
first detection pass, a frame's faces refined and embedded in parallel) with the same work in order.
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
from recognizer_node.sface import SFace

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


def variants(models_dirs: list[Path], threads: int, in_order: bool) -> list[tuple[str, Recognizer]]:
    """(tag, recognizer) to alternate: one per models dir, and each also in order when asked."""
    out = []
    for d in models_dirs:
        tag = f"  {d}" if len(models_dirs) > 1 else ""
        out.append((tag + ("  overlapped" if in_order else ""), _recognizer(d, threads)))
        if in_order:
            rec = _recognizer(d, threads)
            rec.decoder = rec.workers = None  # no decoding ahead, faces one after another
            out.append((tag + "  in order", rec))
    return out


def _recognizer(models_dir: Path, threads: int) -> Recognizer:
    return Recognizer(RecognizerSettings(models_dir=models_dir, threads=threads), models_dir.parent)


def bench_pipeline(models_dirs: list[Path], runs: int, in_order: bool, thread_counts: list[int]) -> None:
    print(f"pipeline (median of {runs} runs after 3 warm-up; ms)")
    header = "  size       faces thr  " + " ".join(f"{s:>11s}" for s in STAGES) + "   snap/s  best total"
    print(header + ("  variant" if len(models_dirs) > 1 or in_order else ""))
    for threads in thread_counts:
        tagged = variants(models_dirs, threads, in_order)
        recs = [rec for _, rec in tagged]
        for w, h, face_w in ((640, 480, 60), (1920, 1080, 120)):
            for n in (1, 3):
                data = frame(w, h, n, face_w)
                for rec in recs * 3:
                    rec.analyze(data)
                timings: list[list[dict[str, float]]] = [[] for _ in recs]
                for _ in range(runs):  # alternate: other work on the machine slows each alike
                    for rec, t in zip(recs, timings, strict=True):
                        t.append(rec.analyze(data).timings_ms)
                for (tag, rec), t in zip(tagged, timings, strict=True):
                    found = len(rec.analyze(data).faces)
                    print(f"  {w}x{h:<5d} {n:5d} {threads:3d}  {_row(t)}{tag}" + _found(found, n))


def _row(timings: list[dict[str, float]]) -> str:
    med = {s: statistics.median(t.get(s, 0.0) for t in timings) for s in STAGES}
    best = min(t["total"] for t in timings)  # the least disturbed run
    cells = " ".join(f"{med[s]:11.1f}" for s in STAGES)
    return f"{cells} {1000 / med['total']:8.1f} {best:11.1f}"


def _found(found: int, expected: int) -> str:
    return "" if found == expected else f"  (found {found} faces)"


def bench_embedder(models_dirs: list[Path], runs: int) -> None:
    print(f"\nembedder alone (aligned faces of the 1080p frames; median / best of {runs} runs; ms)")
    rec = Recognizer(RecognizerSettings(models_dir=models_dirs[0]), models_dirs[0].parent)
    crops = [f.crop for f in rec.analyze(frame(1920, 1080, 3, 120)).faces]
    for threads in (1, 2):
        embedders = [SFace(_embedder_path(d), threads) for d in models_dirs]
        ways = {
            "1 face": lambda e: e.embed(crops[:1]),
            "3 faces, one inference": lambda e: e.embed(crops, batch=3),
            "3 faces, one by one": lambda e: e.embed(crops),
        }
        for e in embedders:
            for way in ways.values():
                way(e)
        for name, way in ways.items():
            times: list[list[float]] = [[] for _ in embedders]
            for _ in range(runs):
                for e, t in zip(embedders, times, strict=True):
                    t0 = time.perf_counter()
                    way(e)
                    t.append((time.perf_counter() - t0) * 1000)
            for t, d in zip(times, models_dirs, strict=True):
                tag = f"  {d}" if len(models_dirs) > 1 else ""
                med, best = statistics.median(t), min(t)
                print(f"  {threads} thr  {name:24s} {med:7.1f} / {best:6.1f}{tag}")


def _embedder_path(models_dir: Path) -> Path:
    settings = RecognizerSettings(models_dir=models_dir)
    return settings.model_path(settings.embedder_model, models_dir.parent)


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
    parser.add_argument(
        "--models-dir", type=Path, action="append", help="default .homesec-data/models; twice: compare"
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--gallery-sizes", default="10,10000,100000,1000000")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-embedder", action="store_true")
    parser.add_argument("--in-order", action="store_true", help="alternate with the pipeline's work in order")
    parser.add_argument("--threads", default="1,2", help="onnxruntime threads per model, each in turn")
    args = parser.parse_args(argv)
    models_dirs = args.models_dir or [Path(".homesec-data/models")]
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (other work on the machine slows every figure)")
    if not args.skip_pipeline:
        bench_pipeline(models_dirs, args.runs, args.in_order, [int(t) for t in args.threads.split(",")])
    if not args.skip_embedder:
        bench_embedder(models_dirs, args.runs)
    bench_matching([int(s) for s in args.gallery_sizes.split(",")], args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
