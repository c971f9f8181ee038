"""Accuracy benchmark (prints figures; not a test).

Enrolls `train/<label>/*` of a faces-dev style dataset, probes `test/`, then probes again with
camera-like frames synthesised from the test photos: each face scaled to 40-80 px wide inside a
1920x1080 frame, dark exposure, sensor noise, JPEG quality 30-40. Reports detection recall,
identification (known named right, strangers never named), verification accuracy over (probe face,
enrolled label) pairs, and a threshold sweep.

    .venv/bin/python bench/accuracy.py [DATASET] [--strangers DIR] [--threshold T] [--margin M]
        [--method max|top2] [--det-max-side N] [--no-refine] [--models-dir DIR]

DATASET defaults to ../shared/datasets/faces-dev (from the repository root). `--strangers DIR` adds
photos of people who are never enrolled (one face each) to measure false accepts.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recognizer_node.gallery import Gallery
from recognizer_node.matching import label_scores
from recognizer_node.pipeline import AnalyzedFace, Recognizer
from recognizer_node.quality import largest_face
from recognizer_node.settings import RecognizerSettings

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faces-dev"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
FRAME_W, FRAME_H = 1920, 1080
FACE_WIDTHS = (40, 50, 60, 70, 80)
# test photo -> the people in it, left to right (None: someone never enrolled)
GROUND_TRUTH: dict[str, list[str | None]] = {
    "alex_lacamoire1.jpg": ["alex_lacamoire"],
    "johnsnow_test1.jpg": ["kit_harington"],
    "kit_with_rose.jpg": ["rose_leslie", "kit_harington"],
    "lin-manuel-miranda.png": [None],
    "obama-1080p.jpg": ["obama"],
    "obama-240p.jpg": ["obama"],
    "obama1.jpg": ["obama"],
    "obama3.jpg": ["obama"],
    "obama_and_biden.jpg": ["biden", "obama", None],
    "two_people.jpg": ["obama", "biden"],
}


@dataclass
class Probe:
    name: str
    truth: str | None  # None: a stranger
    photo: Path
    box: tuple[int, int, int, int]  # in the clean photo
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)  # condition -> label -> score
    named: dict[str, str | None] = field(default_factory=dict)  # condition -> label given (None: unknown)


# ------------------------------------------------------------------------------------ synthesis


def camera_frame(
    photo: np.ndarray, box: tuple[int, int, int, int], face_w: int, rng: np.random.Generator
) -> tuple[bytes, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """A dark, noisy, low-quality 1080p JPEG with the face `face_w` px wide; returns (jpeg, face box, motion box)."""
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
    frame = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=int(rng.integers(30, 41)))
    face = (round(fx1) + ox, round(fy1) + oy, round(box[2] * f) + ox, round(box[3] * f) + oy)
    fw, fh = face[2] - face[0], face[3] - face[1]
    motion = (
        max(0, face[0] - 2 * fw),
        max(0, face[1] - fh),
        min(FRAME_W, face[2] + 2 * fw),
        min(FRAME_H, face[3] + 5 * fh),
    )
    return out.getvalue(), face, motion


# ----------------------------------------------------------------------------------- evaluation


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def enroll(rec: Recognizer, gallery: Gallery, train: Path) -> None:
    for person in sorted(p for p in train.iterdir() if p.is_dir()):
        for photo in images(person):
            result = rec.enroll(photo.read_bytes(), person.name, gallery, largest=True, source="bench")
            if not result.ok:
                print(f"  enroll {photo.name}: refused ({result.reason})")


def probes_of(rec: Recognizer, test: Path, strangers: Path | None) -> list[Probe]:
    out = []
    for photo in images(test):
        faces = sorted(rec.analyze(photo.read_bytes(), embed_all=True).faces, key=lambda f: f.box[0])
        truth = GROUND_TRUTH.get(photo.name)
        if truth is None or len(truth) != len(faces):
            print(f"  skip {photo.name}: {len(faces)} faces found, ground truth {truth}")
            continue
        out += [
            Probe(f"{photo.name}#{i}", t, photo, f.box)
            for i, (t, f) in enumerate(zip(truth, faces, strict=True))
        ]
    for photo in images(strangers) if strangers else []:
        faces = rec.analyze(photo.read_bytes(), embed_all=True).faces
        if faces:
            out.append(Probe(f"stranger/{photo.name}", None, photo, largest_face(faces).box))
    return out


def record(
    rec: Recognizer, gallery: Gallery, probe: Probe, condition: str, face: AnalyzedFace | None
) -> None:
    matrix = gallery.matrix(rec.embedder_id)
    if face is None or face.embedding is None or face.rejected is not None:
        probe.scores[condition] = {label: None for label in matrix.labels}
        probe.named[condition] = None
        return
    sims = face.embedding[None, :] @ matrix.embeddings.T
    scores = label_scores(sims, matrix.starts, rec.settings.match_method)[0]
    probe.scores[condition] = {label: float(s) for label, s in zip(matrix.labels, scores, strict=True)}
    match = rec.match(_single(face), gallery).faces[0]
    probe.named[condition] = match.label


def _single(face: AnalyzedFace):  # type: ignore[no-untyped-def]
    from recognizer_node.pipeline import Analysis

    return Analysis(0, 0, [face], {})


def run_probes(rec: Recognizer, gallery: Gallery, probes: list[Probe]) -> dict[str, int]:
    found = {"degraded": 0, "degraded+motion": 0, "frames": 0}
    for n, probe in enumerate(probes):
        data = probe.photo.read_bytes()
        clean = [f for f in rec.analyze(data).faces if iou(f.box, probe.box) > 0.5]
        record(rec, gallery, probe, "clean", clean[0] if clean else None)
        photo = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        for face_w in FACE_WIDTHS:
            rng = np.random.default_rng([n, face_w])
            jpeg, box, motion = camera_frame(photo, probe.box, face_w, rng)
            found["frames"] += 1
            for condition, mbox in (("degraded", None), ("degraded+motion", motion)):
                hits = [f for f in rec.analyze(jpeg, mbox).faces if iou(f.box, box) > 0.3]
                found[condition] += bool(hits)
                record(rec, gallery, probe, f"{condition}@{face_w}", hits[0] if hits else None)
    return found


def conditions(probes: list[Probe], prefix: str) -> list[str]:
    return sorted({c for p in probes for c in p.scores if c == prefix or c.startswith(prefix + "@")})


def verification(probes: list[Probe], prefix: str, threshold: float) -> tuple[float, float, float, int]:
    """(accuracy, true accept rate, false accept rate, pairs) over probe face x enrolled label pairs."""
    right = genuine = impostor = accepted_genuine = accepted_impostor = 0
    for p in probes:
        for c in conditions([p], prefix):
            for label, score in p.scores[c].items():
                accept = score is not None and score >= threshold
                if label == p.truth:
                    genuine += 1
                    accepted_genuine += accept
                else:
                    impostor += 1
                    accepted_impostor += accept
                right += accept == (label == p.truth)
    total = genuine + impostor
    return (
        right / max(total, 1),
        accepted_genuine / max(genuine, 1),
        accepted_impostor / max(impostor, 1),
        total,
    )


def identification(probes: list[Probe], prefix: str) -> str:
    known_right = known = wrong = strangers = strangers_named = 0
    for p in probes:
        for c in conditions([p], prefix):
            named = p.named[c]
            if p.truth is None:
                strangers += 1
                strangers_named += named is not None
            else:
                known += 1
                known_right += named == p.truth
                wrong += named is not None and named != p.truth
    return (
        f"known named right {known_right}/{known} ({100 * known_right / max(known, 1):.1f}%), "
        f"named wrong {wrong}, strangers named {strangers_named}/{strangers}"
    )


def report(probes: list[Probe], found: dict[str, int], threshold: float) -> None:
    frames = found["frames"]
    print(
        f"\ndetection recall on camera-like frames ({frames} frames, faces {FACE_WIDTHS[0]}-{FACE_WIDTHS[-1]} px):"
    )
    for c in ("degraded", "degraded+motion"):
        print(f"  {c:16s} {found[c]}/{frames} ({100 * found[c] / max(frames, 1):.1f}%)")
    print(f"\nat threshold {threshold}:")
    for prefix in ("clean", "degraded", "degraded+motion"):
        acc, tar, far, n = verification(probes, prefix, threshold)
        print(
            f"  {prefix:16s} verification accuracy {100 * acc:.2f}% ({n} pairs; TAR {100 * tar:.1f}%, "
            f"FAR {100 * far:.2f}%); {identification(probes, prefix)}"
        )
    print("\nper face width (degraded, no motion box):")
    for w in FACE_WIDTHS:
        acc, tar, far, n = verification(probes, f"degraded@{w}", threshold)
        print(
            f"  {w:3d} px: accuracy {100 * acc:.2f}%, TAR {100 * tar:.1f}%, FAR {100 * far:.2f}% ({n} pairs)"
        )
    print("\nthreshold sweep (verification accuracy / TAR / FAR):")
    for t in np.arange(0.20, 0.61, 0.05):
        cells = []
        for prefix in ("clean", "degraded", "degraded+motion"):
            acc, tar, far, _ = verification(probes, prefix, float(t))
            cells.append(f"{prefix} {100 * acc:5.1f}/{100 * tar:5.1f}/{100 * far:4.1f}")
        print(f"  {t:.2f}: " + "   ".join(cells))
    print("\nscore distributions (per probe face x enrolled label):")
    for prefix in ("clean", "degraded", "degraded+motion"):
        gen, imp = scores(probes, prefix, genuine=True), scores(probes, prefix, genuine=False)
        print(
            f"  {prefix:16s} genuine min {min(gen, default=np.nan):.3f} p5 {_pct(gen, 5):.3f} "
            f"median {_pct(gen, 50):.3f} (n={len(gen)});  impostor max {max(imp, default=np.nan):.3f} "
            f"p99 {_pct(imp, 99):.3f} (n={len(imp)})"
        )
    print("\ngenuine label minus best other label (the margin's view):")
    for prefix in ("clean", "degraded", "degraded+motion"):
        g = gaps(probes, prefix)
        print(f"  {prefix:16s} min {min(g, default=np.nan):.3f}, median {_pct(g, 50):.3f} (n={len(g)})")


def gaps(probes: list[Probe], prefix: str) -> list[float]:
    """Per known probe: its true label's score minus the best other label's (what the margin sees)."""
    out = []
    for p in probes:
        for c in conditions([p], prefix):
            own = p.scores[c].get(p.truth or "")
            others = [s for label, s in p.scores[c].items() if label != p.truth and s is not None]
            if p.truth is not None and own is not None and others:
                out.append(own - max(others))
    return out


def scores(probes: list[Probe], prefix: str, genuine: bool) -> list[float]:
    return [
        s
        for p in probes
        for c in conditions([p], prefix)
        for label, s in p.scores[c].items()
        if s is not None and (label == p.truth) == genuine
    ]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--strangers", type=Path, help="folder of photos of people never enrolled")
    parser.add_argument("--models-dir", type=Path, default=Path(".homesec-data/models"))
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--margin", type=float)
    parser.add_argument("--method", choices=["max", "top2"])
    parser.add_argument("--det-max-side", type=int)
    parser.add_argument("--no-refine", action="store_true")
    args = parser.parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "match_threshold": args.threshold,
            "match_margin": args.margin,
            "match_method": args.method,
            "det_max_side": args.det_max_side,
        }.items()
        if v is not None
    }
    settings = RecognizerSettings(models_dir=args.models_dir, refine=not args.no_refine, **overrides)
    print(f"settings: {settings.model_dump(exclude_defaults=True, mode='json')}")
    rec = Recognizer(settings, Path(".homesec-data"))
    with tempfile.TemporaryDirectory() as tmp, Gallery(Path(tmp) / "gallery.sqlite3") as gallery:
        enroll(rec, gallery, args.dataset / "train")
        print(f"enrolled: {gallery.labels()}")
        probes = probes_of(rec, args.dataset / "test", args.strangers)
        print(
            f"probes: {sum(p.truth is not None for p in probes)} known faces, {sum(p.truth is None for p in probes)} strangers"
        )
        found = run_probes(rec, gallery, probes)
        report(probes, found, settings.match_threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
