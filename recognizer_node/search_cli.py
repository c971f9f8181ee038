"""`homesec faces search --query IMAGE (TARGET | --archive)`: the exact contract is in docs/search.md.

Exit codes: 0 searched (with or without hits); 1 models bad; 2 usage: no/both targets, TARGET not a
directory, no archive yet, query image unreadable or without a face.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from homesec.cliutil import EXIT_FAILED, EXIT_OK, EXIT_USAGE, cli_section, fail
from homesec.contract import ContractError
from recognizer_node.models import ModelError
from recognizer_node.settings import RecognizerSettings

if TYPE_CHECKING:
    import numpy as np

    from recognizer_node.archive import ArchiveHit
    from recognizer_node.directory_search import IndexedFace
    from recognizer_node.pipeline import Recognizer


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", metavar="TARGET", help="directory of photos (searched recursively)")
    p.add_argument("--query", required=True, metavar="IMAGE", help="photo of the person (largest face)")
    p.add_argument("--archive", action="store_true", help="search the recognizer's event archive instead")
    p.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="minimum similarity (default: recognizer.match_threshold)",
    )
    p.add_argument("--min-face", type=int, default=0, metavar="PX", help="ignore faces narrower than PX")
    p.add_argument("--top", type=int, metavar="N", help="at most N hits")
    p.add_argument("--json", action="store_true", help="one JSON object per line per hit")
    p.add_argument("--models-dir", type=Path, help="default: recognizer.models_dir or <data_dir>/models")
    p.set_defaults(func=cmd_faces_search)


def cmd_faces_search(args: argparse.Namespace) -> int:
    from recognizer_node.pipeline import Recognizer, query_face

    if args.archive == (args.target is not None):
        return fail("give either a TARGET directory or --archive (not both)", EXIT_USAGE)
    if args.top is not None and args.top < 1:
        return fail("--top must be at least 1", EXIT_USAGE)
    if args.target is not None and not Path(args.target).is_dir():
        return fail(f"{args.target}: not a directory", EXIT_USAGE)
    settings, data_dir = cli_section(args, RecognizerSettings, models_dir=args.models_dir)
    try:
        rec = Recognizer(settings, data_dir)
    except ModelError as exc:
        return fail(str(exc), EXIT_FAILED)
    try:
        query = query_face(rec, Path(args.query).read_bytes()).embedding
    except OSError as exc:
        return fail(f"{args.query}: cannot read: {exc.strerror}", EXIT_USAGE)
    except ContractError as exc:
        return fail(f"{args.query}: {exc}", EXIT_USAGE)
    assert query is not None  # query_face embeds every face
    threshold = settings.match_threshold if args.threshold is None else args.threshold
    if args.archive:
        archive_dir = settings.archive.resolve_dir(data_dir)
        return _search_archive(args, archive_dir, rec.embedder_id, query, threshold)
    return _search_directory(args, data_dir, rec, query, threshold)


def _search_directory(
    args: argparse.Namespace, data_dir: Path, rec: Recognizer, query: np.ndarray, threshold: float
) -> int:
    from recognizer_node.directory_search import DirectoryIndex, rank
    from recognizer_node.progress import progress, progress_wanted

    def show(paths: Iterable[Path]) -> Iterable[Path]:
        return progress(paths, desc="photos", unit="photo", enabled=progress_wanted(args.json))

    with DirectoryIndex(data_dir / "search" / "index.sqlite3", rec.embedder_id) as index:
        report = index.refresh(Path(args.target), lambda data: rec.analyze(data, embed_all=True), show)
    for path, error in report.errors:
        print(f"{path}: skipped: {error}", file=sys.stderr)
    hits = rank(query, report.faces, threshold, args.min_face, args.top)
    for face, similarity in hits:
        print(_dir_line(face, similarity, args.json))
    if not args.json:
        print(
            f"{len(hits)} hit(s) in {report.images} image(s), {len(report.faces)} face(s); "
            f"{report.analyzed} image(s) indexed now, the rest from the cache",
            file=sys.stderr,
        )
    return EXIT_OK


def _dir_line(face: IndexedFace, similarity: float, as_json: bool) -> str:
    if as_json:
        return json.dumps({"path": str(face.path), "similarity": similarity, "box": list(face.box)})
    return f"{similarity:.3f}  {face.path}  box {','.join(map(str, face.box))}"


def _search_archive(
    args: argparse.Namespace, archive_dir: Path, model: str, query: np.ndarray, threshold: float
) -> int:
    from recognizer_node.archive import DB_NAME, Archive

    if not (archive_dir / DB_NAME).exists():
        return fail(f"no archive at {archive_dir} (the recognizer has not archived anything yet)", EXIT_USAGE)
    with Archive(archive_dir, model, visitor_threshold=None) as archive:
        hits = archive.search(query, threshold, None if args.min_face else args.top)
    hits = [h for h in hits if h.box[2] - h.box[0] >= args.min_face][: args.top]
    for hit in hits:
        print(_archive_line(hit, args.json))
    if not args.json:
        print(f"{len(hits)} event(s)", file=sys.stderr)
    return EXIT_OK


def _archive_line(hit: ArchiveHit, as_json: bool) -> str:
    snapshot = os.path.abspath(hit.snapshot) if hit.snapshot is not None else None
    if as_json:
        return json.dumps(
            {"event_id": hit.event_id, "camera": hit.camera, "ts": hit.ts_iso,
             "similarity": hit.similarity, "box": list(hit.box), "snapshot": snapshot}
        )  # fmt: skip
    local = datetime.fromtimestamp(hit.ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{hit.similarity:.3f}  {local}  {hit.camera}  event {hit.event_id}  {snapshot or '(no snapshot)'}"
