"""Side by side with the `face_recognition` library (dlib) on faces-dev (prints tables; not a test).

    .venv/bin/python bench/compare_dlib.py --dlib-python /tmp/frvenv/bin/python [DATASET] [--runs 3]
        [--cnn-runs 1] [--no-cnn] [--no-frames] [--whole-runs 3] [--whole-only] [--models-dir DIR]

face_recognition is not a project dependency, so its side runs in a venv of its own:
    python3 -m venv /tmp/frvenv && /tmp/frvenv/bin/pip install dlib-bin face_recognition_models \\
        && /tmp/frvenv/bin/pip install --no-deps face_recognition && /tmp/frvenv/bin/pip install Click numpy Pillow
This script runs itself there with `--worker`, which imports only face_recognition, numpy and Pillow
and prints JSON (per image: face boxes, 128-d encodings, milliseconds).

Speed: decode + detection + encoding of every face per test/ image, median of `--runs` passes after one
warm-up image. face_recognition with its defaults (upsample 1, 'small' 5-point landmarks, 1 jitter), HOG
and CNN detectors (CNN: `--cnn-runs`, it takes minutes per pass on a CPU); homesec's Recognizer.analyze
with 1 and 2 onnxruntime threads.
Accuracy: enroll the largest face of each train/<label>/ photo; probe
test/ (faces left to right against GROUND_TRUTH, from faces_dev_people.py; an image whose face count
differs is skipped for that library); then camera-like frames made from each probe face by camera_frame (face
40-80 px wide in a dark, noisy 1920x1080 JPEG of quality 30-40), where the face counts as found when a
detection's centre falls inside its box. homesec names faces as its service does (its threshold and
margin); face_recognition names the nearest enrollment when its distance is <= 0.6 (its default
tolerance), as its examples do. CNN is not run on the frames (about 85 s per 1080p frame here).
Whole run (`--whole-runs N`, default 3; 0 skips it): 16 of those frames, every probe face at one of
the widths, embedded by one process start to exit, start-up and model loading included:
`homesec faces embed --json` against a face_recognition process (HOG) doing the same; runs alternate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faces_dev_people import enrolled_faces  # beside this script (stdlib only: dlib's Python runs it too)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "faces-dev"
SUFFIXES = {".jpg", ".jpeg", ".png"}
TOLERANCE = 0.6
FACE_WIDTHS = (40, 50, 60, 70, 80)
FRAME_W, FRAME_H = 1920, 1080
WHOLE_RUN_FRAMES = 16
GROUND_TRUTH = enrolled_faces()  # faces-dev's test/ photos, left to right (None: not enrolled)

Faces = list[dict[str, Any]]  # {"box": [x1, y1, x2, y2], "enc": [128 floats]}
Named = dict[str, Any]  # {"label": str | None, "score": float | None, "why": str | None}


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)


def train_photos(dataset: Path) -> list[tuple[str, Path]]:
    return [(d.name, p) for d in sorted((dataset / "train").iterdir()) if d.is_dir() for p in images(d)]


# ----------------------------------------------------------------------- the dlib side (other venv)


def worker(dataset: Path, model: str, runs: int, frames: Path | None) -> dict[str, Any]:
    from importlib.metadata import version

    import face_recognition as fr

    def faces_of(path: Path) -> tuple[Faces, float, float]:
        t0 = time.perf_counter()
        img = fr.load_image_file(path)
        locs = fr.face_locations(img, model=model)
        t1 = time.perf_counter()
        encs = fr.face_encodings(img, locs)
        t2 = time.perf_counter()
        faces = [
            {"box": [lf, tp, rt, bt], "enc": e.tolist()}
            for (tp, rt, bt, lf), e in zip(locs, encs, strict=True)
        ]
        return faces, (t1 - t0) * 1000, (t2 - t1) * 1000

    tests = images(dataset / "test")
    faces_of(tests[0])  # warm-up (model loading)
    out: dict[str, Any] = {
        "version": f"face_recognition {version('face_recognition')}, dlib-bin {version('dlib-bin')}"
    }
    out["train"] = {f"{label}/{p.name}": faces_of(p)[0] for label, p in train_photos(dataset)}
    out["test"] = {}
    for p in tests:
        passes = [faces_of(p) for _ in range(runs)]
        out["test"][p.name] = {
            "faces": passes[0][0],
            "ms": statistics.median(x[1] + x[2] for x in passes),
            "detect_ms": statistics.median(x[1] for x in passes),
            "encode_ms": statistics.median(x[2] for x in passes),
        }
    if frames is not None:
        out["frames"] = {
            p.name: dict(zip(("faces", "ms"), faces_of(p)[:2], strict=True)) for p in images(frames)
        }
    return out


def embed_files(files: list[str]) -> None:
    """The dlib side of the whole run: what `homesec faces embed` does, with face_recognition."""
    import face_recognition as fr

    for path in files:
        img = fr.load_image_file(path)
        print(json.dumps({"path": path, "faces": len(fr.face_encodings(img, fr.face_locations(img)))}))


def whole_runs(dlib_python: str, models_dir: Path, files: list[Path], runs: int) -> dict[str, list[float]]:
    """Wall seconds of one process embedding every file, start-up and model loading included.

    Both start as on a user's machine, where Python's bytecode of the packages is cached: an untimed
    first run of each fills a cache of its own (PYTHONDONTWRITEBYTECODE, set in some shells and CI,
    would make every run compile homesec's sources again, 0.2 s, while pip compiled dlib's at install).
    """
    homesec = Path(sys.executable).parent / "homesec"
    cmds = {
        "homesec faces embed": [str(homesec), "faces", "embed", "--json", "--models-dir", str(models_dir)],
        "face_recognition HOG": [dlib_python, __file__, "--embed-files"],
    }
    seconds: dict[str, list[float]] = {name: [] for name in cmds}
    with tempfile.TemporaryDirectory(prefix="homesec-pyc-") as pyc:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pyc
        for run in range(runs + 1):  # alternate: other work on the machine slows both alike
            for name, cmd in cmds.items():
                t0 = time.perf_counter()
                subprocess.run(
                    [*cmd, *map(str, files)], capture_output=True, check=True, timeout=1800, env=env
                )
                if run:  # the first run of each is the warm-up
                    seconds[name].append(time.perf_counter() - t0)
    return seconds


def report_whole_runs(seconds: dict[str, list[float]], n_files: int) -> None:
    runs = len(next(iter(seconds.values())))
    print(f"\nwhole run: one process embeds {n_files} camera-like 1080p frames (s; median / best of {runs})")
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    for name, s in seconds.items():
        print(f"  {name:22s} {medians[name]:7.2f} / {min(s):6.2f}")
    (hs, hs_s), (fr, fr_s) = medians.items()
    print(f"  {fr} / {hs}: {fr_s / hs_s:.1f}x (medians), {min(seconds[fr]) / min(seconds[hs]):.1f}x (best)")


def run_worker(python: str, dataset: Path, model: str, runs: int, frames: Path | None) -> dict[str, Any]:
    cmd = [python, __file__, "--worker", model, "--runs", str(runs), str(dataset)]
    cmd += ["--frames-dir", str(frames)] if frames else []
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"face_recognition worker ({model}) failed:\n{done.stderr[-3000:]}")
    out = dict(json.loads(done.stdout))
    print(f"face_recognition {model.upper()}: done in {time.perf_counter() - t0:.0f} s ({out['version']})")
    return out


def nearest(gallery: tuple[list[str], Any], enc: list[float]) -> Named:
    import numpy as np

    labels, encs = gallery
    dist = np.linalg.norm(encs - np.asarray(enc), axis=1)
    best = int(np.argmin(dist))
    return {
        "label": labels[best] if dist[best] <= TOLERANCE else None,
        "score": float(dist[best]),
        "why": None,
    }


def dlib_named(result: dict[str, Any], frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Enroll the largest face per train photo, then name test faces and frame faces."""
    import numpy as np

    labels, encs, refused = [], [], []
    for key, faces in result["train"].items():
        if not faces:
            refused.append(f"{key}: no face found")
            continue
        labels.append(key.split("/")[0])
        encs.append(max(faces, key=lambda f: area(f["box"]))["enc"])
    gallery = (labels, np.asarray(encs))
    test = {
        name: [nearest(gallery, f["enc"]) for f in sorted(r["faces"], key=lambda f: f["box"][0])]
        for name, r in result["test"].items()
    }
    on_frames = []
    for fr in frames if "frames" in result else []:
        hit = hit_of(result["frames"][fr["file"]]["faces"], fr["box"])
        on_frames.append(None if hit is None else nearest(gallery, hit["enc"]))
    ms = [r["ms"] for r in result.get("frames", {}).values()]
    return {"enrolled": len(labels), "refused": refused, "test": test, "frames": on_frames, "frame_ms": ms}


# --------------------------------------------------------------------------------- homesec's side


def area(box: list[int] | tuple[int, ...]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def hit_of(faces: list[Any], box: list[int], box_of: Callable[[Any], Any] = lambda f: f["box"]) -> Any:
    """The detection whose centre lies inside `box` (the closest to its centre), or None."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2

    def centre(f: Any) -> tuple[float, float]:
        b = box_of(f)
        return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2

    inside = [f for f in faces if box[0] <= centre(f)[0] <= box[2] and box[1] <= centre(f)[1] <= box[3]]
    return min(inside, key=lambda f: (centre(f)[0] - cx) ** 2 + (centre(f)[1] - cy) ** 2, default=None)


def homesec_named(m: Any) -> Named:
    return {"label": m.label, "score": m.similarity, "why": m.face.rejected}


def camera_frame(
    photo: Any, box: tuple[int, int, int, int], face_w: int, rng: Any
) -> tuple[bytes, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """A dark, noisy, low-quality 1080p JPEG with the face `face_w` px wide: (jpeg, face box, motion box)."""
    import io

    import numpy as np
    from PIL import Image, ImageFilter

    f = face_w / (box[2] - box[0])
    h, w = photo.shape[:2]
    small = Image.fromarray(photo).resize(
        (max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.LANCZOS
    )
    scene = Image.fromarray(photo).resize((FRAME_W, FRAME_H)).filter(ImageFilter.GaussianBlur(12))
    cx, cy = int(rng.integers(200, FRAME_W - 200)), int(rng.integers(150, FRAME_H - 400))
    fx1, fy1 = box[0] * f, box[1] * f
    ox, oy = round(cx - fx1), round(cy - fy1)
    scene.paste(small, (ox, oy))
    arr = np.asarray(scene, dtype=np.float32) / 255.0
    gain = rng.uniform(0.3, 0.45)  # under-exposed
    arr = 255.0 * gain * arr**1.3 + rng.normal(0, 2.5, arr.shape)  # plus sensor noise
    out = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(
        out, format="JPEG", quality=int(rng.integers(30, 41))
    )
    face = (round(fx1) + ox, round(fy1) + oy, round(box[2] * f) + ox, round(box[3] * f) + oy)
    fw, fh = face[2] - face[0], face[3] - face[1]
    motion = (
        max(0, face[0] - 2 * fw),
        max(0, face[1] - fh),
        min(FRAME_W, face[2] + 2 * fw),
        min(FRAME_H, face[3] + 5 * fh),
    )
    return out.getvalue(), face, motion


def make_frames(
    rec: Any, dataset: Path, truth: dict[str, list[str | None]], out: Path
) -> list[dict[str, Any]]:
    """Camera-like 1080p frames of every probe face (`camera_frame`, fixed seeds)."""
    import io

    import numpy as np
    from PIL import Image

    frames, n = [], 0
    for p in images(dataset / "test"):
        want = truth.get(p.name)
        faces = sorted(rec.analyze(p.read_bytes(), embed_all=True).faces, key=lambda f: f.box[0])
        if want is None or len(want) != len(faces):
            continue
        photo = np.asarray(Image.open(io.BytesIO(p.read_bytes())).convert("RGB"))
        for t, f in zip(want, faces, strict=True):
            for face_w in FACE_WIDTHS:
                jpeg, box, motion = camera_frame(photo, f.box, face_w, np.random.default_rng([n, face_w]))
                name = f"{n:02d}-{face_w}.jpg"
                (out / name).write_bytes(jpeg)
                frames.append({"file": name, "truth": t, "box": list(box), "motion": motion, "w": face_w})
            n += 1
    return frames


def homesec_side(
    dataset: Path, models_dir: Path, runs: int, frames_dir: Path | None, truth: Any
) -> dict[str, Any]:
    from recognizer_node.gallery import Gallery
    from recognizer_node.pipeline import Recognizer
    from recognizer_node.settings import RecognizerSettings

    tests = images(dataset / "test")
    out: dict[str, Any] = {"ms": {}, "enrolled": 0, "refused": []}
    for threads in (1, 2):
        rec = Recognizer(RecognizerSettings(models_dir=models_dir, threads=threads), models_dir.parent)
        rec.analyze(tests[0].read_bytes())  # warm-up
        for p in tests:
            data, times = p.read_bytes(), []
            for _ in range(runs):
                t0 = time.perf_counter()
                rec.analyze(data)
                times.append((time.perf_counter() - t0) * 1000)
            out["ms"].setdefault(p.name, {})[threads] = statistics.median(times)
    frames = make_frames(rec, dataset, truth, frames_dir) if frames_dir else []
    with tempfile.TemporaryDirectory() as tmp, Gallery(Path(tmp) / "gallery.sqlite3") as gallery:
        for label, p in train_photos(dataset):
            result = rec.enroll(p.read_bytes(), label, gallery, largest=True, source="bench")
            out["enrolled"] += result.ok
            out["refused"] += [] if result.ok else [f"{label}/{p.name}: {result.reason}"]
        out["test"] = {
            p.name: [
                homesec_named(m)
                for m in sorted(rec.recognize(p.read_bytes(), gallery).faces, key=lambda m: m.face.box[0])
            ]
            for p in tests
        }
        for key, use_motion in (("frames", False), ("frames+motion", True)):
            out[key], out[key + "_ms"] = [], []
            for fr in frames:
                data = (frames_dir / fr["file"]).read_bytes() if frames_dir else b""
                t0 = time.perf_counter()
                got = rec.recognize(data, gallery, fr["motion"] if use_motion else None).faces
                out[key + "_ms"].append((time.perf_counter() - t0) * 1000)
                hit = hit_of(got, fr["box"], lambda m: m.face.box)
                out[key].append(None if hit is None else homesec_named(hit))
    out["rule"] = f"threshold {rec.settings.match_threshold}, margin {rec.settings.match_margin}"
    out["frame_list"] = frames
    return out


# -------------------------------------------------------------------------------------- reporting


def score_pairs(pairs: list[tuple[str | None, Named | None]]) -> str:
    """(truth, what was named or None when not detected) -> one summary line."""
    known = [(t, g) for t, g in pairs if t is not None]
    strangers = [(t, g) for t, g in pairs if t is None]
    found = sum(g is not None for _, g in pairs)
    right = sum(g is not None and g["label"] == t for t, g in known)
    wrong = sum(g is not None and g["label"] not in (None, t) for t, g in known)
    named = sum(g is not None and g["label"] is not None for _, g in strangers)
    return (
        f"found {found}/{len(pairs)}; known named right {right}/{len(known)} ({100 * right / max(len(known), 1):.0f}%), "
        f"named wrong {wrong}, strangers named {named}/{len(strangers)}"
    )


def report_speed(
    hs: dict[str, Any], dl: dict[str, dict[str, Any]], dataset: Path, runs: dict[str, int]
) -> None:
    from PIL import Image

    cols = ["homesec thr1", "homesec thr2", *(f"fr {m.upper()}" for m in dl)]
    print(
        "\nspeed: decode + detect + encode per test/ image, ms (median of "
        + ", ".join(f"{k} {v}" for k, v in runs.items())
        + " runs)"
    )
    print(f"  {'image':24s} {'size':>10s} " + " ".join(f"{c:>13s}" for c in cols))
    per_col: dict[str, list[float]] = {c: [] for c in cols}
    for name, ms in hs["ms"].items():
        with Image.open(dataset / "test" / name) as im:
            size = f"{im.width}x{im.height}"
        cells = [ms[1], ms[2], *(d["test"][name]["ms"] for d in dl.values())]
        for c, v in zip(cols, cells, strict=True):
            per_col[c].append(v)
        print(f"  {name:24s} {size:>10s} " + " ".join(f"{v:13.0f}" for v in cells))
    for stat, fn in (("median", statistics.median), ("mean", statistics.fmean)):
        print(f"  {stat:24s} {'':>10s} " + " ".join(f"{fn(per_col[c]):13.0f}" for c in cols))
    for model, d in dl.items():
        det = statistics.fmean(x["detect_ms"] for x in d["test"].values())
        enc = statistics.fmean(x["encode_ms"] for x in d["test"].values())
        print(f"  (fr {model.upper()}: mean {det:.0f} ms decode + detect, {enc:.0f} ms encode per image)")


def report_accuracy(
    hs: dict[str, Any], dl: dict[str, dict[str, Any]], truth: dict[str, list[str | None]], n_train: int
) -> None:
    frames = hs["frame_list"]
    rows = [("homesec", hs["enrolled"], hs["refused"], hs["test"], hs["rule"])]
    named = {m: dlib_named(d, frames) for m, d in dl.items()}
    rows += [
        (f"fr {m.upper()}", r["enrolled"], r["refused"], r["test"], f"nearest, distance <= {TOLERANCE}")
        for m, r in named.items()
    ]
    print("\naccuracy on test/ photos (GROUND_TRUTH)")
    for lib, enrolled, refused, test, rule in rows:
        pairs: list[tuple[str | None, Named | None]] = []
        skipped = []
        for name, want in truth.items():
            got = test.get(name, [])
            if len(got) != len(want):
                skipped.append(f"{name} ({len(got)} faces found, {len(want)} expected)")
                continue
            pairs += list(zip(want, got, strict=True))
        print(f"  {lib:8s} enrolled {enrolled}/{n_train}; {score_pairs(pairs)}  [{rule}]")
        for line in refused + [f"skipped {s}" for s in skipped]:
            print(f"      {line}")
    print("  per face (left to right): truth | " + " | ".join(r[0] for r in rows))
    for name, want in truth.items():
        for i, t in enumerate(want):
            cells = []
            for row in rows:
                got = row[3].get(name, [])
                g = got[i] if len(got) == len(want) else None
                sc = "" if g is None or g["score"] is None else f" {g['score']:.2f}"
                cells.append(
                    f"({len(got)} faces)" if g is None else f"{g['label'] or g['why'] or 'unknown'}{sc}"
                )
            print(f"    {name}#{i} {t or 'stranger'} | " + " | ".join(cells))
    if not frames:
        return
    print(
        f"\ncamera-like 1080p frames ({len(frames)}: faces {frames[0]['w']}-{frames[-1]['w']} px, dark, noisy, JPEG 30-40)"
    )
    truths = [fr["truth"] for fr in frames]
    lines = [
        ("homesec", hs["frames"], hs["frames_ms"]),
        ("homesec + motion box", hs["frames+motion"], hs["frames+motion_ms"]),
    ]
    lines += [(f"fr {m.upper()}", r["frames"], r["frame_ms"]) for m, r in named.items() if r["frames"]]
    widths = sorted({fr["w"] for fr in frames})
    for lib, got, ms in lines:
        print(
            f"  {lib:21s} {score_pairs(list(zip(truths, got, strict=True)))}; {statistics.fmean(ms):.0f} ms/frame"
        )
        by_w = []
        for w in widths:
            sel = [
                (t, g) for fr, t, g in zip(frames, truths, got, strict=True) if fr["w"] == w and t is not None
            ]
            by_w.append(f"{w}px {sum(g is not None and g['label'] == t for t, g in sel)}/{len(sel)}")
        print(f"  {'':21s} known named right by face width: " + ", ".join(by_w))


def whole_run_frames(frames: list[Path]) -> list[Path]:
    return frames[:: max(1, len(frames) // WHOLE_RUN_FRAMES)][:WHOLE_RUN_FRAMES]  # every face, spread


def only_whole_runs(dlib_python: str, dataset: Path, models_dir: Path, runs: int) -> int:
    """`--whole-only`: the same 16 frames (same seeds), timed without the rest of the comparison."""
    from recognizer_node.pipeline import Recognizer
    from recognizer_node.settings import RecognizerSettings

    rec = Recognizer(RecognizerSettings(models_dir=models_dir), models_dir.parent)
    with tempfile.TemporaryDirectory(prefix="homesec-dlib-") as tmp:
        frames = make_frames(rec, dataset, GROUND_TRUTH, Path(tmp))
        picked = whole_run_frames([Path(tmp) / fr["file"] for fr in frames])
        report_whole_runs(whole_runs(dlib_python, models_dir, picked, runs), len(picked))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--dlib-python", help="python of a venv with face_recognition installed")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cnn-runs", type=int, default=1)
    parser.add_argument("--no-cnn", action="store_true", help="skip face_recognition's CNN detector")
    parser.add_argument("--no-frames", action="store_true", help="skip the camera-like frames")
    parser.add_argument("--models-dir", type=Path, default=REPO / ".homesec-data" / "models")
    parser.add_argument("--worker", choices=["hog", "cnn"], help=argparse.SUPPRESS)
    parser.add_argument("--frames-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--embed-files", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--whole-runs", type=int, default=3, help="0: skip the whole-run timing")
    parser.add_argument("--whole-only", action="store_true", help="only the whole-run timing (minutes)")
    args = parser.parse_args(argv)
    if args.embed_files:
        embed_files(args.embed_files)
        return 0
    if args.worker:
        print(json.dumps(worker(args.dataset, args.worker, args.runs, args.frames_dir)))
        return 0
    if not args.dlib_python:
        parser.error("--dlib-python is required (see the install lines above)")
    sys.path.insert(0, str(REPO))
    if args.whole_only:
        return only_whole_runs(args.dlib_python, args.dataset, args.models_dir, max(1, args.whole_runs))
    with tempfile.TemporaryDirectory(prefix="homesec-dlib-") as tmp:
        frames_dir = None if args.no_frames else Path(tmp)
        hs = homesec_side(args.dataset, args.models_dir, args.runs, frames_dir, GROUND_TRUTH)
        dl = {"hog": run_worker(args.dlib_python, args.dataset, "hog", args.runs, frames_dir)}
        if not args.no_cnn:
            dl["cnn"] = run_worker(args.dlib_python, args.dataset, "cnn", args.cnn_runs, None)
        picked = whole_run_frames([Path(tmp) / fr["file"] for fr in hs["frame_list"]])
        run_whole = picked and args.whole_runs > 0
        whole = whole_runs(args.dlib_python, args.models_dir, picked, args.whole_runs) if run_whole else {}
    runs = {"homesec": args.runs, "HOG": args.runs} | ({} if args.no_cnn else {"CNN": args.cnn_runs})
    report_speed(hs, dl, args.dataset, runs)
    report_accuracy(hs, dl, GROUND_TRUTH, len(train_photos(args.dataset)))
    if whole:
        report_whole_runs(whole, len(picked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
