"""The HTTP API's throughput and latency, next to the same photo through MQTT (prints figures; not a test).

One recognizer node runs as its own process (`python -m recognizer_node`, with a fresh mosquitto, as in
bench/e2e.py), its HTTP API on a free port. The photo is bench/recognizer.py's 1920x1080 JPEG with one
120 px face, the face of "jamie", who is enrolled first (over HTTP), so every answer is a match.
- HTTP: C clients (threads, one httpx connection each) each POST the photo to `/api/image/match` and
  wait for the answer, R times.
- MQTT: C clients each publish the photo as a camera snapshot and wait for its result on
  `recognizer/result/<camera>`, R times. This is the recognizer's snapshot path: it also archives the
  snapshot, which HTTP match does not.
Each variant prints matches per second (answers / wall time) and the p50/p95 of each request's latency,
for C = 1 and 4.

    .venv/bin/python bench/http_api.py [--models-dir DIR] [--requests 30] [--clients 1,4] [--threads 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and its name would hide the standard
# library's `http` (which httpx imports): look for modules from the repository root instead.
BENCH, REPO = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402

import httpx  # noqa: E402

from bench.e2e import OtherWork, SnapshotPublisher, System, T, machine, pct  # noqa: E402
from bench.recognizer import frame  # noqa: E402
from homesec.broker import free_port  # noqa: E402
from homesec.contract import Role, SnapshotMeta  # noqa: E402
from recognizer_node.http.tokens import Scope, TokenStore  # noqa: E402

CAMERA = "bench"
WARMUP = 3  # requests per client before the clock starts


def run_clients(clients: int, requests: int, one: Callable[[int, int], None]) -> tuple[float, list[float]]:
    """`clients` threads each calling `one(client, i)` `requests` times; (wall seconds, latencies ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        for i in range(WARMUP):
            one(c, -1 - i)
        start.wait()
        for i in range(requests):
            t0 = time.perf_counter()
            one(c, i)
            took = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies


def http_match(url: str, token: str, jpeg: bytes, clients: int) -> Callable[[int, int], None]:
    sessions = [
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        for _ in range(clients)
    ]

    def one(c: int, _i: int) -> None:
        r = sessions[c].post("/api/image/match", files={"File": ("frame.jpg", jpeg, "image/jpeg")})
        r.raise_for_status()
        if r.json()["label"] != "jamie":
            raise RuntimeError(f"not matched: {r.text[:300]}")

    return one


def mqtt_snapshot(system: System, pub: SnapshotPublisher, jpeg: bytes) -> Callable[[int, int], None]:
    assert system.viewer is not None
    viewer, topic = system.viewer, T.result(CAMERA)
    events = [uuid.uuid4().hex for _ in range(8)]  # one event per client, one seq per request

    def one(c: int, i: int) -> None:
        seq = i + WARMUP  # warm-up requests come as -1, -2, ...
        mark = viewer.mark()
        meta = SnapshotMeta(
            camera=CAMERA, event_id=events[c], seq=seq, burst=1, trigger="pir", width=1920, height=1080
        )
        pub.publish(CAMERA, jpeg, meta)
        seen = viewer.wait_for(
            lambda s: s.topic == topic and s.meta()["event_id"] == events[c] and s.meta()["seq"] == seq,
            120,
            mark,
        )
        if seen.meta()["verdict"] != "known":
            raise RuntimeError(f"not matched: {json.dumps(seen.meta())[:300]}")

    return one


def report(name: str, clients: int, seconds: float, latencies: list[float], busy: float) -> None:
    print(
        f"  {name:5s} {clients} client{'s' if clients > 1 else ' '}  {len(latencies) / seconds:6.1f} matches/s  "
        f"p50 {pct(latencies, 50):6.0f} ms  p95 {pct(latencies, 95):6.0f} ms  "
        f"({len(latencies)} requests in {seconds:5.1f} s; other work {100 * busy:.0f}%)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=REPO / ".homesec-data" / "models")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per client")
    parser.add_argument("--clients", default="1,4", help="concurrent clients, comma-separated")
    parser.add_argument("--threads", type=int, default=2, help="recognizer.threads (onnxruntime)")
    args = parser.parse_args(argv)
    jpeg = frame(1920, 1080, 1, 120)
    print(f"{machine()} at the start")
    print(
        f"photo: 1920x1080 JPEG, one face 120 px, {len(jpeg) // 1024} KB; recognizer threads {args.threads}"
    )
    with tempfile.TemporaryDirectory(prefix="homesec-bench-http-") as tmp:
        system = System(Path(tmp) / "run", args.models_dir).start(telegram=False)
        pub = SnapshotPublisher(system.port, system.files.passwords[str(Role.CAMERA)])
        try:
            token, _ = TokenStore.of(Path(tmp) / "run" / "data").create(Scope.ADMIN, "bench")
            port = free_port()
            system.spawn(
                "recognizer", "recognizer_node", "recognizer/main",
                HOMESEC_RECOGNIZER__THREADS=str(args.threads),
                HOMESEC_RECOGNIZER__HTTP__PORT=str(port),
                HOMESEC_RECOGNIZER__HTTP__RATE_PER_MINUTE="100000000",
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as admin:
                train = admin.post(
                    "/api/image/train",
                    files={"File": ("jamie.jpg", (REPO / "tests/data/faces/obama_train.jpg").read_bytes())},
                    data={"label": "jamie"},
                )
                if not train.json().get("ok"):
                    raise RuntimeError(f"enrollment refused: {train.text}")
            for clients in (int(c) for c in args.clients.split(",")):
                for name, one in (
                    ("HTTP", http_match(url, token, jpeg, clients)),
                    ("MQTT", mqtt_snapshot(system, pub, jpeg)),
                ):
                    other = OtherWork(system)
                    seconds, latencies = run_clients(clients, args.requests, one)
                    report(name, clients, seconds, latencies, other.share())
        finally:
            pub.close()
            system.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
