"""Accuracy benchmark for any folder of photos with one sub-folder per person (prints figures; not a test).

    .venv/bin/python bench/accuracy.py --dataset DIR [--enroll K] [--visits N] [--sizes 30,40,60,80,120]
        [--no-motion-box] [--no-rotate] [--leave-out NAME ...] [--threshold T] [--margin M]

The split rule (nothing is read from file names but their order):
- each sub-folder of DIR is one person; its photos (.jpg .jpeg .png .webp) are sorted by file name;
- a person with more than K photos (K = `--enroll`, default 1) is enrolled with the first K;
  the rest are that person's probes;
- a person with K photos or fewer, or named with `--leave-out`, is never enrolled: a stranger,
  every photo of theirs a stranger probe;
- unless `--no-rotate`, each enrolled person's probes are also tried as a stranger's, against the
  gallery without that person (so every probe photo also measures false names).
Each photo's largest face is the one that counts: use photos where the person's face is the largest.

Each probe photo is pasted into a 1920x1080 frame with its face 30, 40, 60, 80 and 120 px wide
(`--sizes`), clean (JPEG q90) and dark (under-exposed with a gamma, sensor noise, JPEG q40), as
`--visits` visits of 3 frames each (a burst: the face moves and scales a little, fresh noise). The
camera's motion box (the person's outline) is passed with each frame unless `--no-motion-box`.

Figures per size and condition:
- det: share of frames where the pasted face was found;
- verification accuracy, TAR and FAR over (probe frame, enrolled label) pairs at the shipped threshold
  (a face not found, or not used, accepts nothing);
- per frame: a known face named right / reported unknown / too small or not found; false names
  (a known face given another label, or a stranger given any);
- per visit (3 frames): the person named when a frame names them (a wrong name in any frame is a
  false name), "unknown" when a usable face stayed unnamed, else too small / not found.
Variants computed on the same frames: `flip` (the embedding of the face averaged with its mirror
image, in enrollment too), `aug` (each enrollment photo also enrolled as the camera would see it: dark,
40 and 60 px) and `fused` (per visit, the frames' embeddings averaged with their quality as weight
before matching). `--dump FILE` writes one JSON line per probe frame (its measures and scores), for
studying a gate.

For faces-dev: `bench/faces_dev_people.py OUT` lays ../shared/datasets/faces-dev out this way.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recognizer_node.embeddings import unit
from recognizer_node.matching import decide, label_scores
from recognizer_node.pipeline import AnalyzedFace, Recognizer
from recognizer_node.quality import is_too_small, largest_face
from recognizer_node.settings import RecognizerSettings

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
FRAME_W, FRAME_H = 1920, 1080
SIZES = (30, 40, 60, 80, 120)
CONDITIONS = ("clean", "dark")
BURST = 3


# ------------------------------------------------------------------------------------ dataset


@dataclass(frozen=True)
class Split:
    enroll: dict[str, list[Path]]  # enrolled person -> enrollment photos
    probes: list[tuple[str, Path]]  # (person, photo); the person may be a stranger
    strangers: frozenset[str]  # never enrolled


def photos_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def split_dataset(dataset: Path, k: int, leave_out: Iterable[str] = ()) -> Split:
    """The documented rule: first `k` photos (by file name) enroll, the rest probe; a person with
    `k` photos or fewer, or left out, is a stranger with every photo a probe."""
    left_out = set(leave_out)
    enroll: dict[str, list[Path]] = {}
    probes: list[tuple[str, Path]] = []
    strangers = set()
    for person in sorted(p for p in dataset.iterdir() if p.is_dir()):
        photos = photos_of(person)
        if not photos:
            continue
        if len(photos) > k and person.name not in left_out:
            enroll[person.name] = photos[:k]
            probes += [(person.name, p) for p in photos[k:]]
        else:
            strangers.add(person.name)
            probes += [(person.name, p) for p in photos]
    return Split(enroll, probes, frozenset(strangers))


# ---------------------------------------------------------------------------------- synthesis


def background(rng: np.random.Generator) -> Image.Image:
    """A plain door-camera-like scene: a lit gradient with soft blocks (wall, door, hedge) and grain."""
    x = np.linspace(0, 1, FRAME_W, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, FRAME_H, dtype=np.float32)[:, None, None]
    base = 70 + 90 * x * (1 - 0.5 * y) + np.zeros((1, 1, 3), np.float32)
    for _ in range(6):
        x1, y1 = int(rng.integers(0, FRAME_W - 200)), int(rng.integers(0, FRAME_H - 200))
        x2, y2 = x1 + int(rng.integers(150, 700)), y1 + int(rng.integers(150, 700))
        base[y1:y2, x1:x2] = base[y1:y2, x1:x2] * 0.5 + rng.uniform(30, 200, 3).astype(np.float32) * 0.5
    scene = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(6))
    return scene


def place(
    photo: Image.Image,
    face: tuple[int, int, int, int],
    face_w: float,
    at: tuple[int, int],
    scene: Image.Image,
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The photo's head (3 face widths around it) scaled to `face_w` and pasted with its face's top-left
    at `at`; returns the frame and the face box in it."""
    fw = face[2] - face[0]
    cx1, cy1 = max(0, face[0] - fw), max(0, face[1] - fw)
    cx2, cy2 = min(photo.width, face[2] + fw), min(photo.height, face[3] + 2 * fw)
    f = face_w / fw
    head = photo.crop((cx1, cy1, cx2, cy2))
    head = head.resize(
        (max(1, round(head.width * f)), max(1, round(head.height * f))), Image.Resampling.LANCZOS
    )
    ox, oy = round(at[0] - (face[0] - cx1) * f), round(at[1] - (face[1] - cy1) * f)
    frame = scene.copy()
    frame.paste(head, (ox, oy))
    box = (at[0], at[1], round(at[0] + fw * f), round(at[1] + (face[3] - face[1]) * f))
    return frame, box


def degrade(frame: Image.Image, condition: str, rng: np.random.Generator) -> bytes:
    if condition == "dark":
        arr = np.asarray(frame, dtype=np.float32) / 255.0
        gain = rng.uniform(0.30, 0.45)  # under-exposed, crushed shadows, sensor noise
        arr = 255.0 * gain * arr**1.3 + rng.normal(0, 3.0, arr.shape)
        frame, quality = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), 40
    else:
        quality = 90
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def motion_box_of(face: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """What a camera's motion detector reports: the person, from the head down."""
    fw, fh = face[2] - face[0], face[3] - face[1]
    return (
        max(0, face[0] - 2 * fw),
        max(0, face[1] - fh),
        min(FRAME_W, face[2] + 2 * fw),
        min(FRAME_H, face[3] + 6 * fh),
    )


def visit_frames(
    photo: Image.Image, face: tuple[int, int, int, int], face_w: int, condition: str, rng: np.random.Generator
) -> list[tuple[bytes, tuple[int, int, int, int]]]:
    """A burst of 3 frames: the face drifts by a few pixels and scales by up to 5 %."""
    scene = background(rng)
    x, y = int(rng.integers(200, FRAME_W - 400)), int(rng.integers(100, FRAME_H - 500))
    out = []
    for _ in range(BURST):
        w = face_w * rng.uniform(0.95, 1.05)
        at = (x + int(rng.integers(-6, 7)), y + int(rng.integers(-4, 5)))
        frame, box = place(photo, face, w, at, scene)
        out.append((degrade(frame, condition, rng), box))
    return out


# --------------------------------------------------------------------------------- evaluation


@dataclass
class Seen:
    """One probe frame: the pasted face as the recognizer saw it."""

    found: bool
    too_small: bool = False
    usable: bool = False
    quality: float = 0.0
    px: int = 0
    sharpness: float = 0.0
    score: float = 0.0
    ms: float = 0.0  # the recognizer's time for the frame (decode to embedding)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # variant -> unit embedding


@dataclass
class Visit:
    person: str
    size: int
    condition: str
    frames: list[Seen]


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def embed_variants(rec: Recognizer, face: AnalyzedFace) -> dict[str, np.ndarray]:
    plain = face.embedding if face.embedding is not None else rec.embed_crop(face.crop)
    mirrored = rec.embed_crop(np.ascontiguousarray(face.crop[:, ::-1]))
    return {"plain": plain, "flip": unit(plain + mirrored)}


def seen_in(rec: Recognizer, jpeg: bytes, box: tuple[int, int, int, int], motion: bool) -> Seen:
    analysis = rec.analyze(jpeg, motion_box_of(box) if motion else None)
    ms = analysis.timings_ms["total"]
    hits = [f for f in analysis.faces if iou(f.box, box) > 0.3]
    if not hits:
        return Seen(False, ms=ms)
    f = max(hits, key=lambda h: iou(h.box, box))
    seen = Seen(True, quality=f.quality, px=f.px, sharpness=f.sharpness, score=f.score, ms=ms)
    if f.rejected is not None:
        seen.too_small = is_too_small(f.rejected)
    else:
        seen.usable, seen.embeddings = True, embed_variants(rec, f)
    return seen


@dataclass(frozen=True)
class Gallery:
    """Per variant: unit rows grouped by label (labels[i] owns rows[starts[i]:starts[i + 1]])."""

    labels: tuple[str, ...]
    rows: dict[str, np.ndarray]
    starts: dict[str, np.ndarray]

    def scores(self, embedding: np.ndarray, variant: str, method: str) -> np.ndarray:
        sims = embedding[None, :] @ self.rows[variant].T
        return label_scores(sims, self.starts[variant], method)[0]  # type: ignore[arg-type]


def probe_variant(variant: str) -> str:
    """The probe embedding a gallery variant is compared with (`aug` only changes the gallery)."""
    return "flip" if variant == "flip" else "plain"


def degraded_copies(rec: Recognizer, photo: Path, box: tuple[int, int, int, int]) -> list[np.ndarray]:
    """The enrollment photo as the door camera would see it (dark, 40 and 60 px): embeddings found."""
    image, out = Image.open(photo).convert("RGB"), []
    for size in (40, 60):
        rng = np.random.default_rng([size, len(photo.name)])
        jpeg, pasted = visit_frames(image, box, size, "dark", rng)[0]
        seen = seen_in(rec, jpeg, pasted, motion=True)
        if seen.usable:
            out.append(seen.embeddings["plain"])
    return out


def enroll(rec: Recognizer, split: Split) -> Gallery:
    """Each variant's rows: `plain` and `flip` embeddings of the enrollment faces; `aug` adds to the
    plain ones the same photos degraded to camera conditions."""
    labels: list[str] = []
    rows: dict[str, list[np.ndarray]] = defaultdict(list)
    starts: dict[str, list[int]] = defaultdict(list)
    for person, photos in sorted(split.enroll.items()):
        got: dict[str, list[np.ndarray]] = defaultdict(list)
        for photo in photos:
            face, reason = rec.pick_for_enrollment(rec.analyze(photo.read_bytes(), embed_all=True), True)
            if face is None:
                print(f"  enroll {person}/{photo.name}: refused ({reason})")
                continue
            for variant, emb in embed_variants(rec, face).items():
                got[variant].append(emb)
            got["aug"] += [got["plain"][-1], *degraded_copies(rec, photo, face.box)]
        if got:
            labels.append(person)
            for variant, embs in got.items():
                starts[variant].append(len(rows[variant]))
                rows[variant] += embs
    return Gallery(
        tuple(labels),
        {v: np.stack(r).astype(np.float32) for v, r in rows.items()},
        {v: np.asarray(st, np.int64) for v, st in starts.items()},
    )


def probe_faces(rec: Recognizer, split: Split) -> list[tuple[str, Image.Image, tuple[int, int, int, int]]]:
    out = []
    for person, photo in split.probes:
        faces = rec.analyze(photo.read_bytes(), embed_all=True).faces
        if not faces:
            print(f"  probe {person}/{photo.name}: no face found, skipped")
            continue
        out.append((person, Image.open(photo).convert("RGB"), largest_face(faces).box))
    return out


def collect(rec: Recognizer, split: Split, sizes: tuple[int, ...], visits: int, motion: bool) -> list[Visit]:
    out = []
    for n, (person, photo, box) in enumerate(probe_faces(rec, split)):
        for size in sizes:
            for c, condition in enumerate(CONDITIONS):
                for v in range(visits):
                    rng = np.random.default_rng([n, size, c, v])
                    frames = visit_frames(photo, box, size, condition, rng)
                    out.append(
                        Visit(person, size, condition, [seen_in(rec, j, b, motion) for j, b in frames])
                    )
    return out


# ----------------------------------------------------------------------------------- decisions


@dataclass
class Tally:
    frames: int = 0
    found: int = 0
    pairs: int = 0
    right_pairs: int = 0
    genuine: int = 0
    genuine_accepted: int = 0
    impostor: int = 0
    impostor_accepted: int = 0
    known_frames: int = 0
    known_named: int = 0
    known_unknown: int = 0  # a usable face of an enrolled person left unnamed: a false alert
    known_small: int = 0
    stranger_frames: int = 0
    false_names: int = 0
    visits_known: int = 0
    visits_known_named: int = 0
    visits_known_unknown: int = 0
    visits_stranger: int = 0
    visits_false_names: int = 0
    genuine_scores: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    impostor_scores: list[float] = field(default_factory=list)

    def pct(self, a: int, b: int) -> str:
        return f"{100 * a / b:5.1f}" if b else "   - "


@dataclass(frozen=True)
class Rules:
    threshold: float
    margin: float
    method: str


def judge(
    embedding: np.ndarray | None, gallery: Gallery, drop: str | None, variant: str, rules: Rules
) -> tuple[np.ndarray | None, tuple[str, ...], str | None]:
    """(per-label scores over the labels kept, those labels, the name given or None)."""
    keep = [i for i, label in enumerate(gallery.labels) if label != drop]
    labels = tuple(gallery.labels[i] for i in keep)
    if embedding is None:
        return None, labels, None
    scores = gallery.scores(embedding, variant, rules.method)[keep]
    (match,) = decide(scores[None, :], labels, rules.threshold, rules.margin)
    return scores, labels, match.label


def tally_visit(
    t: Tally, visit: Visit, truth: str | None, gallery: Gallery, variant: str, fused: bool, rules: Rules
) -> None:
    """`truth` None: the visitor is a stranger to this gallery (their own label, if any, dropped)."""
    drop = visit.person if truth is None else None
    names = []
    unnamed_usable = False
    for seen in visit.frames:
        t.frames += 1
        t.ms.append(seen.ms)
        t.found += seen.found
        scores, labels, name = judge(
            seen.embeddings.get(probe_variant(variant)), gallery, drop, variant, rules
        )
        for i, label in enumerate(labels):
            accept = scores is not None and scores[i] >= rules.threshold
            genuine = label == truth
            t.pairs += 1
            t.right_pairs += accept == genuine
            if scores is not None:
                (t.genuine_scores if genuine else t.impostor_scores).append(float(scores[i]))
            if genuine:
                t.genuine += 1
                t.genuine_accepted += accept
            else:
                t.impostor += 1
                t.impostor_accepted += accept
        if truth is None:
            t.stranger_frames += 1
        else:
            t.known_frames += 1
            t.known_named += name == truth
            t.known_unknown += seen.usable and name is None
            t.known_small += not seen.usable
        t.false_names += name is not None and name != truth
        names.append(name)
        unnamed_usable |= seen.usable and name is None
    if fused:
        names, unnamed_usable = fused_names(visit, gallery, drop, variant, rules)
    named = {n for n in names if n is not None}
    wrong = bool(named - {truth})
    if truth is None:
        t.visits_stranger += 1
    else:
        t.visits_known += 1
        t.visits_known_named += truth in named and not wrong
        t.visits_known_unknown += not named and unnamed_usable
    t.visits_false_names += wrong


def fused_names(
    visit: Visit, gallery: Gallery, drop: str | None, variant: str, rules: Rules
) -> tuple[list[str | None], bool]:
    usable = [s for s in visit.frames if s.usable]
    if not usable:
        return [], False
    mean = unit(np.sum([s.quality * s.embeddings[probe_variant(variant)] for s in usable], axis=0))
    _, _, name = judge(mean, gallery, drop, variant, rules)
    return [name], name is None


def evaluate(
    visits: list[Visit], gallery: Gallery, split: Split, rotate: bool, variant: str, fused: bool, rules: Rules
) -> dict[tuple[int, str], Tally]:
    out: dict[tuple[int, str], Tally] = defaultdict(Tally)
    enrolled = set(gallery.labels)
    for visit in visits:
        t = out[(visit.size, visit.condition)]
        if visit.person in enrolled:
            tally_visit(t, visit, visit.person, gallery, variant, fused, rules)
            if rotate:
                tally_visit(t, visit, None, gallery, variant, fused, rules)
        else:
            tally_visit(t, visit, None, gallery, variant, fused, rules)
    return out


# -------------------------------------------------------------------------------------- report


def print_table(title: str, tallies: dict[tuple[int, str], Tally]) -> None:
    print(f"\n{title}")
    print(
        "  size cond  | det % | verif % TAR %  FAR % | frame: named unknown small/none false | "
        "visit: named unknown false (visits known/stranger) | genuine min p5, impostor max | ms"
    )
    for (size, cond), t in sorted(tallies.items()):
        print(
            f"  {size:4d} {cond:5s} | {t.pct(t.found, t.frames)} | {t.pct(t.right_pairs, t.pairs)} "
            f"{t.pct(t.genuine_accepted, t.genuine)} {t.pct(t.impostor_accepted, t.impostor)} | "
            f"{t.pct(t.known_named, t.known_frames)} {t.pct(t.known_unknown, t.known_frames)}   "
            f"{t.pct(t.known_small, t.known_frames)}    {t.false_names:4d} | "
            f"{t.pct(t.visits_known_named, t.visits_known)} {t.pct(t.visits_known_unknown, t.visits_known)}   "
            f"{t.visits_false_names:4d}  ({t.visits_known}/{t.visits_stranger}) | {spread(t)} | {np.median(t.ms):.0f}"
        )


def spread(t: Tally) -> str:
    g, i = t.genuine_scores, t.impostor_scores
    if not g or not i:
        return "-"
    return f"{min(g):.3f} {np.percentile(g, 5):.3f}, {max(i):.3f}"


def dump(path: Path, visits: list[Visit], gallery: Gallery, rules: Rules) -> None:
    """Per frame: what was measured and the scores, to study a gate (own: the person's own label)."""
    with path.open("w") as out:
        for visit in visits:
            for seen in visit.frames:
                row = {"person": visit.person, "size": visit.size, "condition": visit.condition}
                row |= {
                    k: getattr(seen, k)
                    for k in ("found", "too_small", "usable", "quality", "px", "sharpness", "score", "ms")
                }
                for variant, emb in seen.embeddings.items():
                    scores = dict(
                        zip(
                            gallery.labels,
                            map(float, gallery.scores(emb, variant, rules.method)),
                            strict=True,
                        )
                    )
                    row[f"own_{variant}"] = scores.pop(visit.person, None)
                    row[f"other_{variant}"] = max(scores.values(), default=None)
                out.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True, help="one sub-folder of photos per person")
    parser.add_argument("--enroll", type=int, default=1, help="photos per person used for enrollment")
    parser.add_argument("--leave-out", action="append", default=[], help="a person never enrolled")
    parser.add_argument("--no-rotate", action="store_true", help="do not reuse probes as strangers'")
    parser.add_argument("--visits", type=int, default=2, help="visits per probe photo, size and condition")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="face widths in px")
    parser.add_argument("--no-motion-box", action="store_true", help="frames come without a motion box")
    parser.add_argument("--models-dir", type=Path, default=Path(".homesec-data/models"))
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--margin", type=float)
    parser.add_argument("--min-face-px", type=int)
    parser.add_argument("--dim-min-face-px", type=int)
    parser.add_argument("--det-max-side", type=int)
    parser.add_argument("--roi-max-side", type=int)
    parser.add_argument("--roi-max-upscale", type=float)
    parser.add_argument("--dump", type=Path, help="write one JSON line per probe frame here")
    parser.add_argument(
        "--variants",
        default="plain,flip,aug,fused",
        help="plain, flip, aug, and each +fused (or fused alone)",
    )
    args = parser.parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "match_threshold": args.threshold,
            "match_margin": args.margin,
            "min_face_px": args.min_face_px,
            "dim_min_face_px": args.dim_min_face_px,
            "det_max_side": args.det_max_side,
            "roi_max_side": args.roi_max_side,
            "roi_max_upscale": args.roi_max_upscale,
        }.items()
        if v is not None
    }
    settings = RecognizerSettings(models_dir=args.models_dir, **overrides)
    rec = Recognizer(settings, Path(".homesec-data"))
    split = split_dataset(args.dataset, args.enroll, args.leave_out)
    gallery = enroll(rec, split)
    print(f"gallery: {', '.join(gallery.labels)}; strangers: {', '.join(sorted(split.strangers)) or '-'}")
    print(f"settings: {settings.model_dump(exclude_defaults=True, mode='json')}")
    print(
        f"probe photos: {len(split.probes)}; threshold {settings.match_threshold}, margin {settings.match_margin}"
    )
    t0 = time.perf_counter()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    visits = collect(rec, split, sizes, args.visits, not args.no_motion_box)
    n = sum(len(v.frames) for v in visits)
    print(f"{n} frames in {time.perf_counter() - t0:.0f} s; motion box: {not args.no_motion_box}")
    rules = Rules(settings.match_threshold, settings.match_margin, settings.match_method)
    if args.dump:
        dump(args.dump, visits, gallery, rules)
    for name in args.variants.split(","):
        variant = name.removesuffix("+fused").removesuffix("fused") or "plain"
        tallies = evaluate(visits, gallery, split, not args.no_rotate, variant, "fused" in name, rules)
        print_table(f"variant {name}", tallies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
