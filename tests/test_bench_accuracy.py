"""The accuracy benchmark's documented split rule, on a folder of empty "photos" (no models needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench" / "accuracy.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_accuracy", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def folder(tmp_path: Path, people: dict[str, list[str]]) -> Path:
    for person, names in people.items():
        (tmp_path / person).mkdir()
        for name in names:
            (tmp_path / person / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a person")
    return tmp_path


def test_first_k_by_file_name_enroll_the_rest_probe_and_the_rest_are_strangers(tmp_path: Path) -> None:
    data = folder(
        tmp_path,
        {"alice": ["b.jpg", "a.JPG", "c.png", "notes.txt"], "bob": ["x.jpg"], "carol": ["2.webp", "1.jpeg"]},
    )
    split = bench().split_dataset(data, 1)
    assert {p: [f.name for f in fs] for p, fs in split.enroll.items()} == {
        "alice": ["a.JPG"],
        "carol": ["1.jpeg"],
    }
    assert [(p, f.name) for p, f in split.probes] == [
        ("alice", "b.jpg"), ("alice", "c.png"), ("bob", "x.jpg"), ("carol", "2.webp"),
    ]  # fmt: skip
    assert split.strangers == {"bob"}  # one photo: nothing left to probe with, so never enrolled


def test_more_enrollment_photos_and_people_left_out(tmp_path: Path) -> None:
    data = folder(tmp_path, {"alice": ["1.jpg", "2.jpg", "3.jpg"], "carol": ["1.jpg", "2.jpg"]})
    split = bench().split_dataset(data, 2, leave_out=["alice"])
    assert split.enroll == {} and split.strangers == {"alice", "carol"}
    assert len(split.probes) == 5  # every photo of a stranger is a probe
