"""When to send a visit's first alert: latency against false alerts (prints figures; not a test).

    .venv/bin/python bench/visits.py [--dataset DIR] [--sizes 40,60,80] [--visits 4] [--interval 0.5]

DIR has one sub-folder per person, split as bench/accuracy.py documents (`--enroll 1`: the first photo
enrolls, the rest probe); default: faces-dev laid out by bench/faces_dev_people.py. Each probe photo is
seen as `--visits` bursts of 3 frames per face size, clean and dark (bench/accuracy.py's door-camera
synthesis, with the motion box). Each enrolled person's probes are also seen by a gallery without them,
as a stranger's (so every photo measures both kinds of error).

Every burst goes through recognizer_node.visits.Visits frame by frame under each policy:
- `at once`: the first frame that is unknown alerts (never doubtful);
- `floor F`: an unknown face at least F similar to someone enrolled waits for the burst's last frame;
  a clearer stranger alerts at once;
- `whole burst`: every unknown waits for the burst's last frame.
Figures per policy: family visits that alerted (a family member reported a stranger: a false alert),
family visits named in the end, stranger visits that alerted (missed ones are strangers unreported),
and the stranger alert's mean wait in camera frames (x `--interval` seconds after the first frame);
then how often a stranger visit's alert was revised by a later frame (the photo replaced by a clearly
better one, or a face added: each an edit of the message sent).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from homesec.contract import RecognitionResult, SnapshotMeta, Verdict
from recognizer_node.gallery import Gallery
from recognizer_node.pipeline import Analysis, Recognizer
from recognizer_node.settings import RecognizerSettings
from recognizer_node.visits import Visits

HERE = Path(__file__).resolve().parent
POLICIES = {"at once": 2.0, "floor 0.30": 0.30, "floor 0.25": 0.25, "floor 0.20": 0.20, "whole burst": -2.0}


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class Burst:
    person: str
    stranger: bool  # seen by a gallery without them
    analyses: list[Analysis]


@dataclass
class Score:
    visits: int = 0
    alerted: int = 0
    named: int = 0
    waited: int = 0  # frames, summed over alerted visits
    revised: int = 0  # alerted visits with a later alert (a revision: another photo or another face)
    photos: int = 0  # of those, visits whose photo was replaced by a later frame


def enroll_all(rec: Recognizer, enroll: dict[str, list[Path]], directory: Path) -> dict[str | None, Gallery]:
    """The full gallery (key None) and, per enrolled person, the gallery without them."""
    galleries: dict[str | None, Gallery] = {}
    for without in [None, *enroll]:
        gallery = Gallery(directory / f"{without or 'all'}.sqlite")
        for person, photos in enroll.items():
            if person != without:
                for photo in photos:
                    rec.enroll(photo.read_bytes(), person, gallery, largest=True, force=True)
        galleries[without] = gallery
    return galleries


def run(rec: Recognizer, acc: ModuleType, dataset: Path, sizes: tuple[int, ...], visits: int) -> None:
    split = acc.split_dataset(dataset, 1)
    with tempfile.TemporaryDirectory() as tmp:
        galleries = enroll_all(rec, split.enroll, Path(tmp))
        bursts = []
        for n, (person, photo, box) in enumerate(acc.probe_faces(rec, split)):
            for size in sizes:
                for c, condition in enumerate(acc.CONDITIONS):
                    for v in range(visits):
                        rng = np.random.default_rng([n, size, c, v])
                        frames = acc.visit_frames(photo, box, size, condition, rng)
                        analyses = [rec.analyze(j, acc.motion_box_of(b)) for j, b in frames]
                        bursts.append((person, size, condition, analyses))
        scores: dict[tuple[str, str], Score] = {}
        for person, _size, _condition, analyses in bursts:
            seen_by = [(None, person in split.strangers)]
            if person in split.enroll:
                seen_by.append((person, True))
            for without, stranger in seen_by:
                gallery = galleries[without]
                for policy, floor in POLICIES.items():
                    s = scores.setdefault((policy, "stranger" if stranger else "family"), Score())
                    alerted_at, verdict, photo_seqs = judge(rec, gallery, analyses, floor)
                    s.visits += 1
                    s.named += verdict == Verdict.KNOWN
                    if alerted_at is not None:
                        s.alerted += 1
                        s.waited += alerted_at
                        s.revised += len(photo_seqs) > 1
                        s.photos += len(set(photo_seqs)) > 1
        for gallery in galleries.values():
            gallery.close()
    report(scores, len(bursts))


def judge(
    rec: Recognizer, gallery: Gallery, analyses: list[Analysis], floor: float
) -> tuple[int | None, Verdict, list[int]]:
    """(the frame index whose arrival sent the alert, or None; the visit's last verdict; the frame each
    of its alerts showed, the first and every revision)."""
    visits = Visits(doubt_floor=floor)
    alerted_at, verdict, photo_seqs = None, Verdict.NO_FACE, []
    for seq, analysis in enumerate(analyses):
        recognition = rec.match(analysis, gallery)
        faces = [m.to_contract() for m in recognition.faces]
        meta = SnapshotMeta(
            camera="door", event_id="e", seq=seq, burst=len(analyses), trigger="pir", width=1920, height=1080
        )
        result = RecognitionResult(
            camera="door", event_id="e", seq=seq, verdict=recognition.verdict, faces=faces,
            timings_ms={}, model="m", node="bench",
        )  # fmt: skip
        embeddings = [m.face.embedding if m.face.rejected is None else None for m in recognition.faces]
        state, decision = visits.add(meta, result, embeddings, b"")
        verdict = state.verdict
        if decision is not None and decision.alert:
            alerted_at = seq if alerted_at is None else alerted_at
            photo_seqs.append(decision.best.meta.seq)
    return alerted_at, verdict, photo_seqs


def report(scores: dict[tuple[str, str], Score], bursts: int) -> None:
    print(f"{bursts} bursts of 3 frames")
    print(f"{'policy':<12} {'family alerted':>15} {'family named':>13} {'strangers alerted':>18} {'wait':>6}")
    for policy in POLICIES:
        fam, st = scores[(policy, "family")], scores[(policy, "stranger")]
        wait = st.waited / st.alerted if st.alerted else 0.0
        print(
            f"{policy:<12} {fam.alerted:>6}/{fam.visits:<8} {fam.named:>6}/{fam.visits:<6} "
            f"{st.alerted:>8}/{st.visits:<9} {wait:>5.2f}"
        )
    print(f"\n{'policy':<12} {'stranger alerts revised':>24} {'photo replaced':>15}")
    for policy in POLICIES:
        st = scores[(policy, "stranger")]
        print(f"{policy:<12} {st.revised:>14}/{st.alerted:<9} {st.photos:>6}/{st.alerted:<8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--sizes", default="40,60,80")
    parser.add_argument("--visits", type=int, default=4)
    parser.add_argument("--models", type=Path, default=HERE.parent / ".homesec-data" / "models")
    args = parser.parse_args(argv)
    acc = load("accuracy")
    rec = Recognizer(RecognizerSettings(models_dir=args.models), args.models.parent)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.dataset is not None:
        run(rec, acc, args.dataset, sizes, args.visits)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        load("faces_dev_people").lay_out(load("faces_dev_people").DEFAULT_SOURCE, Path(tmp))
        run(rec, acc, Path(tmp), sizes, args.visits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
