"""Lay faces-dev out as one folder per person (symbolic links), for `bench/accuracy.py --dataset`.

    .venv/bin/python bench/faces_dev_people.py OUT [--source ../shared/datasets/faces-dev]

faces-dev's train/ is already one folder per person; its test/ photos are not, so their people are
listed here (the photos with one face only; the README of faces-dev says who is who). Training photos
are linked as `a_<name>` and test photos as `b_<name>`, so that sorted by file name the training photos
come first: with `--enroll 1` each person is enrolled with a training photo and probed with the rest.
Lin-Manuel Miranda, never enrolled in faces-dev, has one photo: a stranger.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faces-dev"
# who is in each test/ photo, left to right (None: a stranger no photo names); train/<name>/ is one person
TEST_FACES: dict[str, list[str | None]] = {
    "alex_lacamoire1.jpg": ["alex_lacamoire"],
    "johnsnow_test1.jpg": ["kit_harington"],
    "kit_with_rose.jpg": ["rose_leslie", "kit_harington"],
    "lin-manuel-miranda.png": ["lin_manuel_miranda"],
    "obama-1080p.jpg": ["obama"],
    "obama-240p.jpg": ["obama"],
    "obama1.jpg": ["obama"],
    "obama3.jpg": ["obama"],
    "obama_and_biden.jpg": ["biden", "obama", None],
    "two_people.jpg": ["obama", "biden"],
}
NEVER_ENROLLED = {"lin_manuel_miranda"}  # no train/ folder
TEST_PEOPLE = {name: faces[0] for name, faces in TEST_FACES.items() if len(faces) == 1 and faces[0]}


def enrolled_faces() -> dict[str, list[str | None]]:
    """TEST_FACES with the people train/ does not enroll as None: what a gallery of train/ can name."""
    return {
        name: [p if p not in NEVER_ENROLLED else None for p in faces] for name, faces in TEST_FACES.items()
    }


def lay_out(source: Path, out: Path) -> int:
    links = [(photo, person.name, "a") for person in (source / "train").iterdir() if person.is_dir()
             for photo in person.iterdir()]  # fmt: skip
    links += [(source / "test" / name, person, "b") for name, person in TEST_PEOPLE.items()]
    for photo, person, prefix in links:
        link = out / person / f"{prefix}_{photo.name}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(photo.resolve())
    return len(links)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args(argv)
    print(f"{lay_out(args.source, args.out)} photos linked under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
