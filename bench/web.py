"""The web page's answer times over a large archive (prints figures; not a test).

Builds an archive of N events (default 10,000) over the last 29 days at camera `door` and `gate`: 60%
the enrolled owner (named, similarity 0.6-0.9), 30% one of 20 recurring unknown visitors, 10% no face;
one or two snapshots each, every snapshot with its JPEG (the demo's 640x480 frames) kept on disk. The
events go straight into the archive (recognizing 10k photos would take the bench most of its time and
says nothing about the pages). Then the recognizer's real HTTP server (uvicorn) serves the pages to a
signed-in httpx client, and each page is asked R times: p50, p95 and max in ms of the whole answer.

Thumbnails are timed twice: the first request makes the thumbnail (decode, scale, write 0600 to the
cache), the next ones read it from disk.

    .venv/bin/python bench/web.py [--events 10000] [--repeat 20] [--models-dir DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH, REPO = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]

import argparse  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from homesec.contract import CameraEnabled, Training, new_id  # noqa: E402
from recognizer_node.archive import ArchivedFace, SnapshotRecord  # noqa: E402
from recognizer_node.household import Household  # noqa: E402
from recognizer_node.http.server import HttpApi  # noqa: E402
from recognizer_node.http.settings import HttpSettings  # noqa: E402
from recognizer_node.http.tokens import Scope, TokenStore  # noqa: E402
from recognizer_node.operations import RecognizerOperations  # noqa: E402
from recognizer_node.settings import ArchiveSettings, RecognizerSettings  # noqa: E402

DEMO = REPO / "demo"
DAY = 86400.0
VISITORS = 20


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def build(ops: RecognizerOperations, events: int, rng: random.Random) -> None:
    assert ops.history is not None
    archive = ops.history.archive
    frames = [p.read_bytes() for p in sorted((DEMO / "camera").glob("*.jpg"))]
    crop = (DEMO / "camera" / "2-stranger-frame-036.jpg").read_bytes()[:4000]  # any bytes will do
    np_rng = np.random.default_rng(7)
    bases = [unit(np_rng.normal(size=128)) for _ in range(VISITORS)]
    now = time.time()
    t0 = time.perf_counter()
    for i in range(events):
        ts = now - 29 * DAY * (events - i) / events
        kind = rng.random()
        for seq in range(rng.choice((1, 2))):
            if kind < 0.6:
                sim = rng.uniform(0.6, 0.9)
                faces = [ArchivedFace((250, 120, 390, 300), "owner", sim, 0.9, embedding=bases[0])]
                verdict = "known"
            elif kind < 0.9:
                v = bases[1 + i % (VISITORS - 1)]
                emb = unit(v + np_rng.normal(scale=0.02, size=128))
                faces = [
                    ArchivedFace(
                        (250, 120, 390, 300), None, 0.1, 0.9, embedding=emb, crop=crop,
                        visitor_candidate=True,
                    )
                ]  # fmt: skip
                verdict = "unknown"
            else:
                faces, verdict = [], "no_face"
            rec = SnapshotRecord(
                event_id=f"ev{i:06d}", seq=seq, camera="door" if i % 4 else "gate", ts=ts + seq,
                verdict=verdict, faces=faces, jpeg=rng.choice(frames),
            )  # fmt: skip
            archive.add(rec)
    took = time.perf_counter() - t0
    snaps, faces_n = archive.count()
    print(f"archive: {events} events, {snaps} snapshots, {faces_n} faces, built in {took:.1f} s")


def timed(client: httpx.Client, path: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return out


def show(name: str, ms: list[float]) -> None:
    p95 = sorted(ms)[max(0, math.ceil(0.95 * len(ms)) - 1)]  # nearest rank
    print(f"{name:<44} p50 {statistics.median(ms):7.1f}  p95 {p95:7.1f}  max {max(ms):7.1f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--models-dir", type=Path, default=REPO / ".homesec-data" / "models")
    args = p.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="homesec-bench-web-") as tmp:
        data = Path(tmp)
        settings = RecognizerSettings(
            models_dir=args.models_dir, archive=ArchiveSettings(max_mb=100_000, max_age_days=30)
        )
        ops = RecognizerOperations.open(settings, data, node="recognizer/bench")
        owner = (DEMO / "enroll" / "owner.jpg").read_bytes()
        assert ops.train(Training(request_id=new_id(), label="owner", image=owner, source="bench")).ok
        build(ops, args.events, rng)
        household = Household()
        household.camera_seen(CameraEnabled(camera="door", enabled=True))
        api = HttpApi(ops, HttpSettings(port=0, rate_per_minute=100_000), data, household)
        token, _ = TokenStore.of(data).create(Scope.ADMIN, "bench")
        api.start()
        try:
            client = httpx.Client(base_url=api.url, timeout=60)
            assert client.post("/login", data={"token": token}).status_code == 303
            page = client.get("/visits").text
            newest = re.findall(r'href="/visits/(ev\d+)"', page)
            thumbs = re.findall(r'src="(/img/thumb/[^"]+)"', page)
            day = datetime.fromtimestamp(time.time() - 10 * DAY).strftime("%Y-%m-%d")
            print(f"pages ({args.repeat} requests each, one client, {api.url}):")
            for name, path in [
                ("Now /", "/"),
                ("Visits /visits (24 of 10k)", "/visits"),
                ("Visits, page 200 (offset 4800)", "/visits?offset=4800"),
                ("Visits, person=owner", "/visits?person=owner"),
                ("Visits, verdict=unknown", "/visits?verdict=unknown"),
                ("Visits, camera=gate", "/visits?camera=gate"),
                (f"Visits, day={day}", f"/visits?day={day}"),
                ("A visit /visits/<id>", f"/visits/{newest[0]}"),
                ("People /people", "/people"),
                ("A person /people/owner", "/people/owner"),
                ("Visitors /visitors", "/visitors"),
                ("Search /search (the form)", "/search"),
            ]:
                show(name, timed(client, path, args.repeat))
            first = [timed(client, t, 1)[0] for t in thumbs]
            show(f"thumbnail, first request ({len(first)} made)", first)
            show("thumbnail, from the cache", [m for t in thumbs for m in timed(client, t, 2)])
            client.close()
        finally:
            api.stop()
            ops.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
