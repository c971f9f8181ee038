"""End to end, not hop by hop: the camera keeps each snapshot until the recognizer's result for it is
seen, and publishes it again when the result does not come. Against a real mosquitto: a broker killed
after its PUBACKs, a broker queue that overflows, a recognizer replica that dies."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camera_node.sender import Snapshot, SnapshotSender
from homesec.bus import Bus, Message, MqttBus
from homesec.contract import RecognitionResult, Role, SnapshotMeta, Topics, Verdict, parse_meta
from homesec.plugins import plugin_for
from homesec.spool import DiskSpool, SpoolItem
from tests.helpers import FakeClock, LocalBus, answer_snapshots, wait_until
from tests.mqtt_helpers import Broker, Collector

T = Topics()
CAM = "door"
REPO = Path(__file__).parent.parent
RECOGNIZER_PERSISTENT = plugin_for(Role.RECOGNIZER).persistent_session  # what the runner gives it


def meta(seq: int, event: str = "e1") -> SnapshotMeta:
    return SnapshotMeta(camera=CAM, event_id=event, seq=seq, burst=99, trigger="pir", width=8, height=8)


class StandIn:
    """A recognizer replica that answers each snapshot with its result and remembers what it answered."""

    def __init__(self, bus: MqttBus) -> None:
        self.bus = bus
        self.answered: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        bus.subscribe(bus.topics.shared_snapshots, self._answer)

    def _answer(self, msg: Message) -> None:
        m = parse_meta(SnapshotMeta, msg.user_properties)
        with self._lock:
            self.answered.append((m.event_id, m.seq))
        result = RecognitionResult(
            camera=m.camera, event_id=m.event_id, seq=m.seq, verdict=Verdict.NO_FACE, faces=[],
            timings_ms={}, model="stand-in", node=self.bus.node,
        )  # fmt: skip
        self.bus.publish(self.bus.topics.result(m.camera), result)

    def start(self) -> StandIn:
        self.bus.start()
        assert self.bus.wait_connected(10)
        return self


def stand_in(broker: Broker, name: str, *, persistent: bool = RECOGNIZER_PERSISTENT) -> StandIn:
    return StandIn(broker.bus(Role.RECOGNIZER, f"recognizer/{name}", persistent=persistent))


def sender_on(bus: Bus, tmp_path: Path, **kw: object) -> SnapshotSender:
    spool = DiskSpool(tmp_path / "spool", max_items=100, max_bytes=10_000_000)
    options: dict[str, object] = {"retry_s": 0.05, "timeout_s": 2.0} | kw
    return SnapshotSender(bus, T.snapshot(CAM), spool, result_topic=T.result(CAM), **options)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- on the fake broker


def test_at_most_max_in_flight_unconfirmed_in_order_and_repeated_after_the_timeout(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}")

    def sent() -> list[int]:
        snaps = [m for m in bus.published if m.topic == T.snapshot(CAM)]
        return [parse_meta(SnapshotMeta, m.user_properties).seq for m in snaps]

    clock = FakeClock()
    sender = sender_on(bus, tmp_path, max_in_flight=2, confirm_timeout_s=30.0, clock=clock)
    sender.start()
    try:
        for seq in range(5):
            sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq)))
        wait_until(lambda: len(sender.spool) == 5 and sender.published == 2)
        assert sent() == [0, 1]  # the window is full: the rest wait on disk
        sender.confirm(("e1", 1))  # answers may come out of order
        wait_until(lambda: sent() == [0, 1, 2])
        clock.advance(31)  # no result for 0 and 2 in time: published again, oldest first
        wait_until(lambda: sender.republished == 2)
        assert sent() == [0, 1, 2, 0, 2]
        answer_snapshots(bus)  # the recognizer is back
        clock.advance(31)
        wait_until(lambda: sender.idle)
        assert sent()[5:7] == [0, 2] and sorted(set(sent())) == [0, 1, 2, 3, 4]
    finally:
        sender.stop()


def test_unconfirmed_snapshots_survive_a_camera_restart(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}")
    sender = sender_on(bus, tmp_path)
    sender.start()
    for seq in range(3):
        sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq)))
    wait_until(lambda: sender.published == 3)
    sender.stop()  # PUBACKed, never answered
    assert len(sender.spool) == 3
    answer_snapshots(bus)
    again = sender_on(bus, tmp_path)
    again.start()
    try:
        wait_until(lambda: again.idle)
        assert again.confirmed == 3
    finally:
        again.stop()


def test_a_snapshot_the_spool_cannot_keep_is_still_published_once_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = LocalBus(f"camera/{CAM}")
    sender = sender_on(bus, tmp_path)

    def full(*_args: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sender.spool, "put", full)
    sender.start()
    try:
        sender.submit(Snapshot(b"jpeg0", meta(0)))
        wait_until(lambda: any(m.topic == T.snapshot(CAM) for m in bus.published))
        assert [e.error for e in bus.errors] == ["spool_failed"]
    finally:
        sender.stop()


# ---------------------------------------------------------------------------------- on mosquitto


def test_a_broker_killed_after_its_pubacks_loses_no_snapshot(fresh_broker: Broker, tmp_path: Path) -> None:
    # A session the broker queues the snapshots for (the worst case: with the recognizers' own clean
    # sessions nothing is even queued while they are down).
    recognizer = stand_in(fresh_broker, "main", persistent=True).start()
    recognizer.bus.stop()  # the recognizer is down while the snapshots come
    camera = fresh_broker.bus(Role.CAMERA, f"camera/{CAM}")
    camera.start()
    assert camera.wait_connected(10)
    sender = sender_on(camera, tmp_path, confirm_timeout_s=1.0)
    sender.start()
    try:
        for seq in range(5):
            sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq)))
        wait_until(lambda: sender.published >= 5, 10)  # every one PUBACKed
        fresh_broker.kill()  # before its autosave: whatever it queued is gone
        fresh_broker.start()
        again = stand_in(fresh_broker, "main", persistent=True).start()
        wait_until(lambda: sender.idle, 10)
        assert set(again.answered) == {("e1", s) for s in range(5)}
        again.bus.stop()
    finally:
        sender.stop()
        camera.stop()


@pytest.fixture
def small_queue_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker that keeps at most 3 messages for an absent persistent session."""
    b = Broker(tmp_path / "small-queue-broker")
    conf = b.files.conf.read_text()
    assert "max_queued_messages" in conf
    lines = [ln for ln in conf.splitlines() if not ln.startswith("max_queued_messages")]
    b.files.conf.write_text("\n".join([*lines, "max_queued_messages 3", ""]))
    b.start()
    yield b
    b.stop()


def test_snapshots_a_full_broker_queue_dropped_are_published_again(
    small_queue_broker: Broker, tmp_path: Path
) -> None:
    broker = small_queue_broker
    recognizer = stand_in(broker, "queued", persistent=True).start()  # a session the broker queues for
    recognizer.bus.stop()
    camera = broker.bus(Role.CAMERA, f"camera/{CAM}")
    camera.start()
    assert camera.wait_connected(10)
    sender = sender_on(camera, tmp_path, confirm_timeout_s=1.0)
    sender.start()
    try:
        for seq in range(8):
            sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq)))
        wait_until(lambda: sender.published >= 8, 10)  # PUBACKed, though the broker kept only 3
        back = stand_in(broker, "queued", persistent=True).start()
        wait_until(lambda: sender.idle, 15)
        assert set(back.answered) == {("e1", s) for s in range(8)}
        assert "dropped" in broker.log() or "Outgoing messages are being dropped" in broker.log()
        back.bus.stop()
    finally:
        sender.stop()
        camera.stop()


REPLICA_SCRIPT = """
import sys, time
from pydantic import SecretStr
from homesec.bus import MqttBus
from homesec.contract import RecognitionResult, Role, SnapshotMeta, Verdict, parse_meta
from homesec.plugins import plugin_for
from homesec.settings import MqttSettings
port, password, group = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = MqttSettings(host="127.0.0.1", port=port, username="recognizer", password=SecretStr(password),
                 share_group=SecretStr(group), keepalive_s=5)
bus = MqttBus(s, node="recognizer/doomed", persistent=plugin_for(Role.RECOGNIZER).persistent_session)
def answer(msg):
    m = parse_meta(SnapshotMeta, msg.user_properties)
    print("GOT", m.seq, flush=True)
    r = RecognitionResult(camera=m.camera, event_id=m.event_id, seq=m.seq, verdict=Verdict.NO_FACE,
                          faces=[], timings_ms={}, model="stand-in", node=bus.node)
    bus.publish(bus.topics.result(m.camera), r)
bus.subscribe(bus.topics.shared_snapshots, answer)
bus.start()
bus.wait_connected(10)
print("READY", flush=True)
time.sleep(3600)
"""


def test_a_dead_replica_holds_no_share_of_the_snapshots(fresh_broker: Broker, tmp_path: Path) -> None:
    broker = fresh_broker  # of its own: no persistent member left in the group by another test
    watch = Collector(broker, T.available("recognizer/doomed"))
    doomed = subprocess.Popen(
        [sys.executable, "-c", REPLICA_SCRIPT, str(broker.port), broker.files.passwords["recognizer"],
         broker.files.group],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    live = stand_in(broker, "alive").start()
    camera = broker.bus(Role.CAMERA, f"camera/{CAM}")
    camera.start()
    assert camera.wait_connected(10)
    sender = sender_on(camera, tmp_path, confirm_timeout_s=30.0)  # no repeat within this test
    sender.start()
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "READY"
        watch.wait_for(lambda m: m.payload == b"online")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
        watch.wait_for(lambda m: m.payload == b"offline", timeout=20)
        for seq in range(6):
            sender.submit(Snapshot(b"jpeg%d" % seq, meta(seq, "after-death")))
        wait_until(lambda: sender.idle, 8)  # all of them, long before any repeat
        assert sorted(live.answered) == [("after-death", s) for s in range(6)]
    finally:
        doomed.kill()
        sender.stop()
        camera.stop()
        live.bus.stop()
        watch.close()


def test_a_confirmation_while_the_sender_reads_its_record_is_neither_reported_nor_republished(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bus = LocalBus(f"camera/{CAM}")
    clock = FakeClock()
    sender = sender_on(bus, tmp_path, max_in_flight=1, confirm_timeout_s=30.0, clock=clock)
    read = sender.spool.get
    raced = threading.Event()

    def confirmed_meanwhile(item_id: str, *, payload: bool = True) -> SpoolItem | None:
        if not raced.is_set():  # the result for it arrives just as the sender reads it again
            raced.set()
            sender.confirm(("e1", 0))
        return read(item_id, payload=payload)

    sender.start()
    try:
        sender.submit(Snapshot(b"jpeg0", meta(0)))
        wait_until(lambda: sender.published == 1)
        sender.spool.get = confirmed_meanwhile  # type: ignore[method-assign]
        clock.advance(31)  # due again
        wait_until(raced.is_set)
        sender.submit(Snapshot(b"jpeg1", meta(1)))  # published after the race is over
        wait_until(lambda: sender.published == 2)
        assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
        assert sender.republished == 0 and sender.confirmed == 1
        assert not (sender.spool.directory / "corrupt").exists()
    finally:
        sender.stop()


def test_a_snapshot_being_confirmed_is_not_taken_for_a_new_one(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}")
    sender = sender_on(bus, tmp_path, max_in_flight=1)
    remove = sender.spool.remove
    removing, may_remove = threading.Event(), threading.Event()

    def slow_remove(item_id: str) -> None:  # the result's thread, between forgetting the key and the file
        removing.set()
        may_remove.wait(5)
        remove(item_id)

    sender.start()
    try:
        sender.submit(Snapshot(b"jpeg0", meta(0)))
        wait_until(lambda: sender.published == 1)
        sender.spool.remove = slow_remove  # type: ignore[method-assign]
        confirming = threading.Thread(target=sender.confirm, args=(("e1", 0),))
        confirming.start()
        assert removing.wait(5)
        sender.submit(Snapshot(b"jpeg1", meta(1)))  # wakes the sender while record 0 is still on disk
        wait_until(lambda: sender.published >= 2)
        may_remove.set()
        confirming.join(5)
        seqs = [
            parse_meta(SnapshotMeta, m.user_properties).seq
            for m in bus.published
            if m.topic == T.snapshot(CAM)
        ]
        assert seqs == [0, 1]
    finally:
        may_remove.set()
        sender.stop()


def test_a_snapshot_never_answered_is_given_up_after_max_attempts_and_reported(tmp_path: Path) -> None:
    bus = LocalBus(f"camera/{CAM}")
    clock = FakeClock()
    sender = sender_on(bus, tmp_path, confirm_timeout_s=30.0, max_attempts=2, clock=clock)
    sender.start()
    try:
        sender.submit(Snapshot(b"jpeg0", meta(0)))
        wait_until(lambda: sender.published == 1)
        for attempt in range(2, 5):  # no result for anything: the recognizer is away, wait for it
            clock.advance(31)
            wait_until(lambda n=attempt - 1: sender.republished == n)  # type: ignore[misc]
        assert bus.errors == [] and len(sender.spool) == 1
        sender.submit(Snapshot(b"jpeg1", meta(1)))  # the recognizer answers others, not this one
        wait_until(lambda: sender.published == 5)
        sender.confirm(("e1", 1))
        clock.advance(31)
        wait_until(lambda: sender.republished == 4)  # missed once
        sender.submit(Snapshot(b"jpeg2", meta(2)))
        wait_until(lambda: sender.published == 7)
        sender.confirm(("e1", 2))
        clock.advance(31)
        wait_until(lambda: sender.idle)
        assert sender.republished == 4 and sender.given_up == 1  # missed twice
        assert [e.error for e in bus.errors] == ["unconfirmed"]
        assert "e1 #0" in bus.errors[0].detail and "2 attempt(s)" in bus.errors[0].detail
    finally:
        sender.stop()
