"""How alike (cosine) the shipped models find the same photo re-encoded, two frames of one camera video,
and two photos of one person: the figures behind `recognizer_node.gallery.SAME_PHOTO_SIMILARITY`
(prints figures; not a test).

    .venv/bin/python bench/train_duplicate.py [--models-dir DIR]

A training at least SAME_PHOTO_SIMILARITY like an enrollment of its label is "already enrolled": the
threshold must sit below every re-encoding a chat app or a browser may send (JPEG q95..q70, scaled)
and above every other photo of the person.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from recognizer_node.gallery import SAME_PHOTO_SIMILARITY
from recognizer_node.pipeline import Recognizer
from recognizer_node.settings import RecognizerSettings

ROOT = Path(__file__).resolve().parent.parent
FACES = ROOT / "tests" / "data" / "faces"
DEMO = ROOT / "demo"
SAME_PERSON = [
    ("obama_train.jpg", "obama_other.jpg"),
    ("obama_train.jpg", "obama_probe.jpg"),
    ("rose_a.jpg", "rose_b.jpg"),
]
VIDEO_FRAMES = [
    ("1-owner-frame-010.jpg", "1-owner-frame-020.jpg"),
    ("1-owner-frame-011.jpg", "1-owner-frame-020.jpg"),
]


def embedding(rec: Recognizer, data: bytes) -> np.ndarray:
    face, why = rec.pick_for_enrollment(rec.analyze(data), True)
    if face is None:
        raise SystemExit(f"no face to enroll: {why}")
    vector = np.asarray(face.embedding if face.embedding is not None else rec.embedder(face.crop), np.float32)
    return vector.reshape(-1) / np.linalg.norm(vector)


def reencoded(data: bytes, quality: int, scale: float = 1.0) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / ".homesec-data" / "models")
    args = parser.parse_args()
    rec = Recognizer(RecognizerSettings(models_dir=args.models_dir), args.models_dir.parent)
    print(f"SAME_PHOTO_SIMILARITY = {SAME_PHOTO_SIMILARITY}")
    for name in ("obama_train.jpg", "rose_a.jpg"):
        data = (FACES / name).read_bytes()
        first = embedding(rec, data)
        for quality, scale in ((95, 1.0), (85, 1.0), (70, 1.0), (50, 1.0), (70, 0.8)):
            score = float(first @ embedding(rec, reencoded(data, quality, scale)))
            print(f"re-encoded   {name} q{quality} x{scale}: {score:.4f}")
    for folder, pairs, what in (
        (FACES, SAME_PERSON, "same person "),
        (DEMO / "camera", VIDEO_FRAMES, "video frames"),
    ):
        for a, b in pairs:
            score = float(
                embedding(rec, (folder / a).read_bytes()) @ embedding(rec, (folder / b).read_bytes())
            )
            print(f"{what} {a} vs {b}: {score:.4f}")
    owner = embedding(rec, (DEMO / "enroll" / "owner.jpg").read_bytes())
    frame = embedding(rec, (DEMO / "camera" / VIDEO_FRAMES[0][0]).read_bytes())
    print(f"same person  owner.jpg vs {VIDEO_FRAMES[0][0]}: {float(owner @ frame):.4f}")


if __name__ == "__main__":
    main()
