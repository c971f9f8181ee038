"""Face search benchmark (prints figures; not a test). Results and the command: docs/search.md.

1. Exact archive search: N random unit embeddings inserted through the real archive code (2 faces per
   snapshot), then the matrix load, search latency (median / p95 over many queries) and memory.
2. Directory index build rate on real photos (a faces-dev style dataset, copied K times so the cache
   cannot help), then the same search again from the cache.
3. Visitor threshold calibration: online clustering of the dataset's faces, in random orders, at several
   thresholds: how many visitors, and whether any visitor mixes two people.

    .venv/bin/python bench/search.py [--faces 100000] [--copies 3] [--dataset DIR] [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faces_dev_people import TEST_FACES  # beside this script

from recognizer_node.archive import Archive, ArchivedFace, SnapshotRecord
from recognizer_node.directory_search import DirectoryIndex, image_files
from recognizer_node.embeddings import unit
from recognizer_node.pipeline import Analysis, Recognizer
from recognizer_node.settings import RecognizerSettings
from recognizer_node.visitors import assign

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = ROOT.parent / "shared" / "datasets" / "faces-dev"


def rss_mb() -> float:
    """Current resident set size (Linux), else the peak so far."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_archive(n_faces: int) -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Archive(Path(tmp), "bench@0", visitor_threshold=None, prune_every=10**9)
        t0 = time.perf_counter()
        emb = unit(rng.normal(size=(n_faces, 128)))
        for i in range(0, n_faces, 2):
            faces = [ArchivedFace((0, 0, 80, 90), None, 0.2, 0.9, None, e) for e in emb[i : i + 2]]
            archive.add(SnapshotRecord(f"ev{i // 10}", (i // 2) % 5, "door", 1.8e9 + i, "unknown", faces))
        insert_s = time.perf_counter() - t0
        db_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        print(f"archive: {n_faces} faces in {n_faces // 2} snapshots inserted in {insert_s:.1f} s "
              f"({n_faces / 2 / insert_s:.0f} snapshots/s); database {db_mb:.0f} MB")  # fmt: skip
        archive.close()

        archive = Archive(Path(tmp) / "jpeg", "bench@0", visitor_threshold=None)
        jpeg = rng.bytes(300_000)  # a 1080p snapshot's size: the JPEG write (with fsync) dominates
        t0 = time.perf_counter()
        for i in range(100):
            face = ArchivedFace((0, 0, 80, 90), None, 0.2, 0.9, None, emb[i])
            archive.add(SnapshotRecord(f"jp{i}", 0, "door", 1.8e9 + i, "unknown", [face], jpeg))
        add_ms = (time.perf_counter() - t0) * 10
        archive.close()
        print(f"archive add with a 300 kB JPEG (written atomically, fsync): {add_ms:.1f} ms per snapshot")

        rss0 = rss_mb()
        archive = Archive(Path(tmp), "bench@0", visitor_threshold=None)
        t0 = time.perf_counter()
        archive.matrix()
        load_ms = (time.perf_counter() - t0) * 1000
        queries = list(unit(rng.normal(size=(40, 128)))) + [emb[i] for i in range(0, n_faces, n_faces // 40)]
        times, hits = [], 0
        for q in queries:
            t0 = time.perf_counter()
            found = archive.search(q, 0.363, 20)
            times.append((time.perf_counter() - t0) * 1000)
            hits += len(found)
        rss1 = rss_mb()
        archive.close()
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        print(f"archive search over {n_faces} faces: load {load_ms:.0f} ms (once, lazily); "
              f"search median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms "
              f"({len(queries)} queries, threshold 0.363, top 20, {hits} hits)")  # fmt: skip
        tracemalloc.start()  # again, traced (tracing slows allocation: not timed)
        archive = Archive(Path(tmp), "bench@0", visitor_threshold=None)
        archive.search(queries[-1], 0.363, 20)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        archive.close()
        print(f"memory: matrix {n_faces * (128 * 4 + 16) / 1e6:.0f} MB; traced while loading + searching: "
              f"{current / 1e6:.0f} MB held, {peak / 1e6:.0f} MB peak; RSS {rss0:.0f} MB before opening the archive, "
              f"{rss1:.0f} MB after loading and searching")  # fmt: skip


def bench_index(rec: Recognizer, dataset: Path, copies: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        for k in range(copies):
            shutil.copytree(dataset, photos / f"copy{k}")
        counted = 0

        def analyze(data: bytes) -> Analysis:
            nonlocal counted
            counted += 1
            return rec.analyze(data, embed_all=True)

        with DirectoryIndex(Path(tmp) / "index.sqlite3", rec.embedder_id) as index:
            t0 = time.perf_counter()
            report = index.refresh(photos, analyze)
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = index.refresh(photos, analyze)
            cached_ms = (time.perf_counter() - t0) * 1000
        n_img, n_faces = report.images, len(report.faces)
        print(f"index build: {n_img} images, {n_faces} faces in {build_s:.1f} s = {n_img / build_s:.1f} images/s, "
              f"{n_faces / build_s:.1f} faces/s ({rec.settings.threads} onnxruntime threads)")  # fmt: skip
        print(
            f"index reuse: {again.images} images from the cache in {cached_ms:.0f} ms, {again.analyzed} re-embedded"
        )


def camera_like(data: bytes, face_w: int, target_w: int, rng: np.random.Generator) -> bytes:
    """The photo scaled so the face is `target_w` px wide, darkened, noisy, JPEG quality 35."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    scale = target_w / face_w
    im = im.resize(
        (max(32, round(im.width * scale)), max(32, round(im.height * scale))), Image.Resampling.BILINEAR
    )
    px = np.asarray(im, np.float32) * 0.55 + rng.normal(0, 4, (im.height, im.width, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=35)
    return out.getvalue()


def dataset_faces(rec: Recognizer, dataset: Path) -> tuple[np.ndarray, list[str], int]:
    """Every labelled face, clean and as camera-like copies 40/60/80 px wide; and how many were clean."""
    rng = np.random.default_rng(3)
    clean: list[tuple[np.ndarray, str]] = []
    degraded: list[tuple[np.ndarray, str]] = []
    for path in image_files(dataset):
        if path.parent.parent.name == "train":
            truth: list[str | None] = [path.parent.name]
        elif path.name in TEST_FACES:
            truth = TEST_FACES[path.name]
        else:
            continue
        data = path.read_bytes()
        faces = sorted(rec.analyze(data, embed_all=True).faces, key=lambda f: f.box[0])
        if len(faces) != len(truth):
            print(f"  (skipping {path.name}: {len(faces)} faces, expected {len(truth)})")
            continue
        clean += [
            (f.embedding, t) for f, t in zip(faces, truth, strict=True) if t and f.embedding is not None
        ]
        if len(faces) != 1 or truth[0] is None:
            continue
        for width in (40, 60, 80):
            small = rec.analyze(camera_like(data, faces[0].px, width, rng), embed_all=True).faces
            if len(small) == 1 and small[0].embedding is not None:
                degraded.append((small[0].embedding, str(truth[0])))
    both = clean + degraded
    return np.stack([e for e, _ in both]), [w for _, w in both], len(clean)


def calibrate_visitors(rec: Recognizer, dataset: Path) -> None:
    emb, who, n_clean = dataset_faces(rec, dataset)
    people = sorted(set(who))
    sims = emb @ emb.T
    same = np.array([[a == b for b in who] for a in who]) & ~np.eye(len(who), dtype=bool)
    diff = np.array([[a != b for b in who] for a in who])
    print(f"visitors: {len(who)} faces of {len(people)} people ({n_clean} clean, {len(who) - n_clean} camera-like "
          f"40-80 px, dark, JPEG q35); same-person similarity min {sims[same].min():.2f} "
          f"5th percentile {np.percentile(sims[same], 5):.2f} median {np.median(sims[same]):.2f}; "
          f"different people max {sims[diff].max():.2f}")  # fmt: skip
    rng = np.random.default_rng(0)
    print(
        f"  threshold  visitors (mean over 50 orders; {len(people)} people)  orders where a visitor mixed two people"
    )
    for threshold in (0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60):
        counts, mixed = [], 0
        for _ in range(50):
            order = rng.permutation(len(who))
            totals: list[np.ndarray] = []
            members: list[set[str]] = []
            for i in order:  # one face per snapshot, as for most camera frames
                (row,) = assign(
                    unit(np.array(totals)) if totals else np.zeros((0, 128)), emb[i : i + 1], threshold
                )
                if row is None:
                    totals.append(emb[i].copy())
                    members.append({who[i]})
                else:
                    totals[row] = totals[row] + emb[i]
                    members[row].add(who[i])
            counts.append(len(totals))
            mixed += any(len(m) > 1 for m in members)
        print(f"  {threshold:9.2f}  {statistics.mean(counts):8.1f}  {mixed:4d} / 50")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--models-dir", type=Path, default=ROOT / ".homesec-data" / "models")
    args = parser.parse_args()
    bench_archive(args.faces)
    rec = Recognizer(RecognizerSettings(models_dir=args.models_dir), args.models_dir.parent)
    bench_index(rec, args.dataset, args.copies)
    calibrate_visitors(rec, args.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
