"""What Mosquitto's persistence settings cost, and what a SIGKILL loses with each.

    .venv/bin/python bench/broker_persistence.py [--snapshots 300] [--kb 150]

For each setting: a persistent recognizer session is offline (its queue fills, as while the recognizer
is down); the camera publishes N snapshots of K KB at QoS 1, each waited for its PUBACK; then the broker
is SIGKILLed at once and restarted, and the recognizer comes back. Printed: publish rate, the broker's
CPU time and bytes written for the burst, and how many queued snapshots survived the kill.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import time
from pathlib import Path

# The repository first, so that `homesec` and the test helpers import from this checkout.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from homesec.broker import MosquittoProcess, free_port, prepare_local_broker  # noqa: E402
from homesec.config import node_client_id  # noqa: E402
from homesec.contract import Topics  # noqa: E402

SETTINGS = {
    "autosave_interval 30 (time, the old config)": ["autosave_interval 30"],
    "autosave_interval 5 (time)": ["autosave_interval 5"],
    "on_changes, every 1": ["autosave_on_changes true", "autosave_interval 1"],
    "on_changes, every 20": ["autosave_on_changes true", "autosave_interval 20"],
    "on_changes, every 100": ["autosave_on_changes true", "autosave_interval 100"],
}
T = Topics()


def _conf(text: str, lines: list[str]) -> str:
    kept = [line for line in text.splitlines() if not line.startswith(("autosave_interval", "autosave_on"))]
    return "\n".join([*kept, *lines]) + "\n"


def _client(port: int, user: str, password: str, *, session: bool) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        protocol=mqtt.MQTTv5,
        client_id=node_client_id(user, password),
    )
    client.username_pw_set(user, password)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600 if session else 0
    connected: queue.Queue[int] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: connected.put(rc.value)
    client.connect("127.0.0.1", port, clean_start=not session, properties=props)
    client.loop_start()
    if connected.get(timeout=10) != 0:
        raise RuntimeError(f"{user} cannot connect")
    return client


def _proc_figures(pid: int) -> tuple[float, int]:
    """CPU seconds and bytes written so far by process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return cpu, int(io["write_bytes"])


def run(name: str, lines: list[str], n: int, kb: int, workdir: Path) -> str:
    port = free_port()
    files = prepare_local_broker(workdir, port)
    files.conf.write_text(_conf(files.conf.read_text(), lines))
    broker = MosquittoProcess(files.conf, port, workdir / "mosquitto.log")
    broker.start()
    rec_pw, cam_pw = files.passwords["recognizer-main"], files.passwords["camera-door"]
    rec = _client(port, "recognizer-main", rec_pw, session=True)
    done: queue.Queue[int] = queue.Queue()
    rec.on_subscribe = lambda c, u, mid, codes, p: done.put(mid)
    rec.subscribe(T.all_snapshots, qos=1)
    done.get(timeout=10)
    rec.disconnect()
    rec.loop_stop()
    cam = _client(port, "camera-door", cam_pw, session=False)
    acked: queue.Queue[int] = queue.Queue()
    cam.on_publish = lambda c, u, mid, rc, p: acked.put(rc.value)
    payload = os.urandom(kb * 1024)
    assert broker.proc is not None
    cpu0, written0 = _proc_figures(broker.proc.pid)
    start = time.perf_counter()
    for _ in range(n):
        cam.publish(T.snapshot("door"), payload, qos=1)
        assert acked.get(timeout=30) == 0
    took = time.perf_counter() - start
    cpu1, written1 = _proc_figures(broker.proc.pid)
    broker.kill()  # the moment every PUBACK is in
    cam.loop_stop()
    broker.start()
    got: queue.Queue[bytes] = queue.Queue()
    rec = _client(port, "recognizer-main", rec_pw, session=True)
    rec.on_message = lambda c, u, msg: got.put(msg.payload)
    survived = 0
    try:
        while True:
            got.get(timeout=3)
            survived += 1
    except queue.Empty:
        pass
    rec.disconnect()
    rec.loop_stop()
    broker.stop()
    mb = (written1 - written0) / 1e6
    return f"| {name} | {n / took:.0f} | {cpu1 - cpu0:.2f} | {mb:.0f} | {survived}/{n} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=300)
    parser.add_argument("--kb", type=int, default=150)
    parser.add_argument("--only", help="run the settings whose name contains this")
    args = parser.parse_args()
    print(f"{args.snapshots} snapshots of {args.kb} KB queued for an offline recognizer, then SIGKILL:")
    print("| setting | published/s | broker CPU s | MB written | survived the kill |")
    print("|---|---|---|---|---|")
    for name, lines in SETTINGS.items():
        if args.only and args.only not in name:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            print(run(name, lines, args.snapshots, args.kb, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
