"""A visit that waits for the rest of its burst holds its frames' results back until it is decided, so
the alert always goes out before the results that tell the camera its snapshots are done. A recognizer
killed while the visit waits leaves them unconfirmed: the camera publishes them again and the restarted
recognizer decides the visit, and alerts, afresh."""

from __future__ import annotations

from pathlib import Path

from camera_node.sender import Snapshot, SnapshotSender
from homesec.contract import (
    Alert,
    RecognitionResult,
    SnapshotMeta,
    Training,
    Verdict,
    meta_property,
    parse,
    parse_meta,
)
from homesec.fakemqtt import FakeBroker
from homesec.spool import DiskSpool
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.conftest import FACES
from tests.helpers import FakeClock, LocalBus, wait_until

NODE = "recognizer/main"
STRANGER = (FACES / "stranger.png").read_bytes()


def burst_frame(seq: int, burst: int = 3) -> SnapshotMeta:
    return SnapshotMeta(camera="door", event_id="e1", seq=seq, burst=burst, trigger="pir", width=1, height=1)


def recognizer(rec: Recognizer, data_dir: Path, broker: FakeBroker, window_s: float) -> RecognizerService:
    # every unknown face doubtful: the visit waits for its burst (or its window) before it decides
    settings = RecognizerSettings(models_dir=rec.models_dir, visit_window_s=window_s, visit_doubt_floor=-0.99)
    bus = LocalBus(NODE, broker=broker)
    service = RecognizerService(settings, data_dir, bus, recognizer=rec)
    service.start()
    bus.start()
    biden = (FACES / "biden_train.jpg").read_bytes()  # someone enrolled: each face has a similarity
    assert service.ops.train(Training(request_id="t", label="biden", image=biden, force=True)).ok
    return service


def door_topics(bus: LocalBus) -> list[str]:
    door = (bus.topics.alert("door"), bus.topics.result("door"))
    return [m.topic for m in bus.published if m.topic in door]


def test_the_results_of_a_waiting_visit_come_after_its_alert(tmp_path: Path, rec: Recognizer) -> None:
    broker = FakeBroker()
    service = recognizer(rec, tmp_path, broker, window_s=60)
    bus = service.bus
    assert isinstance(bus, LocalBus)
    try:
        for seq in (0, 1):  # the burst's last frame never comes: the window decides
            bus.inject(bus.topics.snapshot("door"), STRANGER, user_properties=meta_property(burst_frame(seq)))
        assert door_topics(bus) == []  # nothing yet: neither the alert nor a result
        service.ops.visits.window_s = 0.0  # the window closes
        wait_until(lambda: len(door_topics(bus)) == 3, timeout=10)
        t = bus.topics
        assert door_topics(bus) == [t.alert("door"), t.result("door"), t.result("door")]
        results = [parse(RecognitionResult, p) for p in bus.payloads(t.result("door"))]
        assert [r.seq for r in results] == [0, 1]
        (alert,) = [parse_meta(Alert, m.user_properties) for m in bus.published if m.topic == t.alert("door")]
        assert alert.verdict == Verdict.UNKNOWN and alert.frames == 2
        # a later frame of the decided visit is not held
        bus.inject(t.snapshot("door"), STRANGER, user_properties=meta_property(burst_frame(2)))
        assert door_topics(bus)[-1] == t.result("door") and len(bus.payloads(t.result("door"))) == 3
    finally:
        service.stop()


def test_a_recognizer_killed_while_the_visit_waits_alerts_after_its_restart(
    tmp_path: Path, rec: Recognizer
) -> None:
    broker, clock = FakeBroker(), FakeClock()
    camera_bus = LocalBus("camera/door", broker=broker)
    spool = DiskSpool(tmp_path / "camera-spool", max_items=100, max_bytes=10_000_000)
    topics = camera_bus.topics
    sender = SnapshotSender(
        camera_bus, topics.snapshot("door"), spool, result_topic=topics.result("door"),
        retry_s=0.05, timeout_s=2.0, confirm_timeout_s=30.0, clock=clock,
    )  # fmt: skip
    sender.start()
    first = recognizer(rec, tmp_path / "rec", broker, window_s=60)  # the window would close too late
    try:
        sender.submit(Snapshot(STRANGER, burst_frame(0)))  # the first frame of a burst; the rest is lost
        wait_until(lambda: first.ops.visits.pending() == 1, timeout=10)
        assert door_topics(first.bus) == []  # held: the camera still keeps the frame
        first.bus.fake.crash()  # type: ignore[attr-defined]  # killed while its visit waits
        first.stop()
        second = recognizer(rec, tmp_path / "rec", broker, window_s=0.3)
        try:
            clock.advance(31)  # no result in time: the camera publishes the frame again
            wait_until(lambda: sender.idle, timeout=15)
            t = second.bus.topics
            assert door_topics(second.bus) == [t.alert("door"), t.result("door")]
            (msg,) = [m for m in second.bus.published if m.topic == t.alert("door")]
            alert = parse_meta(Alert, msg.user_properties)
            assert (alert.event_id, alert.seq, alert.verdict) == ("e1", 0, Verdict.UNKNOWN)
        finally:
            second.stop()
    finally:
        sender.stop()
