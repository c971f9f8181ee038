"""A snapshot the recognizer already answered (the camera published it again, the broker redelivered it):
the same result again, its alert again under the same key (the notifier drops a copy it handled), no
second archive record; also after a restart. A snapshot it cannot process is answered with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from homesec.contract import Alert, RecognitionResult, SnapshotMeta, Verdict, meta_property
from recognizer_node.operations import RecognizerOperations
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import ArchiveSettings, RecognizerSettings
from tests.conftest import FACES
from tests.helpers import LocalBus

NODE = "recognizer/main"
STRANGER = (FACES / "stranger.png").read_bytes()


@pytest.fixture(scope="module")
def rec(models_dir: Path) -> Recognizer:
    return Recognizer(RecognizerSettings(models_dir=models_dir), models_dir.parent)


def open_ops(data_dir: Path, rec: Recognizer, archive: bool = True) -> RecognizerOperations:
    settings = RecognizerSettings(models_dir=rec.models_dir, archive=ArchiveSettings(enabled=archive))
    return RecognizerOperations.open(settings, data_dir, node=NODE, recognizer=rec)


def meta(event: str = "e1", seq: int = 0, camera: str = "door") -> SnapshotMeta:
    return SnapshotMeta(camera=camera, event_id=event, seq=seq, burst=1, trigger="pir", width=1, height=1)


def key_of(alert: Alert) -> tuple[str, str, int]:
    return alert.camera, alert.event_id, alert.seq


def same(a: RecognitionResult, b: RecognitionResult) -> bool:
    keep = {"camera", "event_id", "seq", "verdict", "faces"}
    return a.model_dump(include=keep) == b.model_dump(include=keep)


def test_a_repeat_gets_the_same_result_and_alert_and_no_archive_record(
    tmp_path: Path, rec: Recognizer
) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        first, alert = ops.recognize(meta(), STRANGER)
        assert first.verdict == Verdict.UNKNOWN and alert is not None
        assert ops.history is not None
        stored = ops.history.archive.count()
        again, repeat_alert = ops.recognize(meta(), STRANGER)
        assert repeat_alert is not None and repeat_alert.meta == alert.meta and same(first, again)
        assert ops.history.archive.count() == stored
        # a new seq is a new snapshot (of another visit here: a visit alerts once, recognizer_node/visits.py)
        other, other_alert = ops.recognize(meta("e2", seq=1), STRANGER)
        assert other_alert is not None and other.seq == 1
    finally:
        ops.close()


def test_the_archive_remembers_answered_snapshots_across_a_restart(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    first, alert = ops.recognize(meta(), STRANGER)
    assert alert is not None and first.faces[0].visitor is not None
    ops.close()
    again_ops = open_ops(tmp_path, rec)
    try:
        assert again_ops.history is not None
        stored = again_ops.history.archive.count()
        again, repeat_alert = again_ops.recognize(meta(), STRANGER)
        assert same(first, again)  # visitor ids included
        # the decision is made again: its alert has the first one's key, which the notifier drops
        assert repeat_alert is not None and key_of(repeat_alert.meta) == key_of(alert.meta)
        assert again_ops.history.archive.count() == stored
    finally:
        again_ops.close()


def test_without_an_archive_repeats_are_known_from_memory(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec, archive=False)
    try:
        first, alert = ops.recognize(meta(), STRANGER)
        assert alert is not None
        again, repeat_alert = ops.recognize(meta(), STRANGER)
        assert repeat_alert is not None and repeat_alert.meta == alert.meta and same(first, again)
        _, elsewhere = ops.recognize(meta(camera="garage"), STRANGER)  # the key includes the camera
        assert elsewhere is not None
    finally:
        ops.close()


def test_the_service_publishes_the_result_again_for_a_repeat(tmp_path: Path, rec: Recognizer) -> None:
    settings = RecognizerSettings(models_dir=rec.models_dir)
    bus = LocalBus(NODE)
    service = RecognizerService(settings, tmp_path, bus, recognizer=rec)
    service.start()
    bus.start()
    try:
        for _ in range(2):
            bus.inject(bus.topics.snapshot("door"), STRANGER, user_properties=meta_property(meta()))
        assert len(bus.payloads(bus.topics.result("door"))) == 2
        alerts = [m for m in bus.published if m.topic == bus.topics.alert("door")]
        assert len(alerts) == 2 and alerts[0].user_properties == alerts[1].user_properties  # one key
        door = (bus.topics.alert("door"), bus.topics.result("door"))
        order = [m.topic for m in bus.published if m.topic in door]
        assert order == [*door, *door]  # the alert first: a kill between the two leaves no result
    finally:
        service.stop()


def test_a_repeat_of_a_frame_that_did_not_decide_the_visit_alerts_nothing(
    tmp_path: Path, rec: Recognizer
) -> None:
    ops = open_ops(tmp_path, rec)
    burst = [meta(seq=seq).model_copy(update={"burst": 2}) for seq in (0, 1)]
    try:
        _, decided = ops.recognize(burst[0], STRANGER)  # nobody enrolled: a stranger at once
        _, later = ops.recognize(burst[1], STRANGER)  # the same visit: no second alert
        assert decided is not None and later is None
        assert ops.recognize(burst[1], STRANGER)[1] is None
        again = ops.recognize(burst[0], STRANGER)[1]
        assert again is not None and again.meta == decided.meta and again.jpeg == decided.jpeg
    finally:
        ops.close()


def test_a_snapshot_that_cannot_be_processed_is_answered_with_the_reason(
    tmp_path: Path, rec: Recognizer
) -> None:
    bus = LocalBus(NODE)
    service = RecognizerService(RecognizerSettings(models_dir=rec.models_dir), tmp_path, bus, recognizer=rec)
    service.start()
    bus.start()
    bad_meta = '{"v": 1, "camera": "door", "event_id": "e2", "seq": 3}'  # no burst, trigger, size
    try:
        bus.inject(bus.topics.snapshot("door"), b"not an image", user_properties=meta_property(meta()))
        bus.inject(bus.topics.snapshot("door"), STRANGER, user_properties={"meta": bad_meta})
        bus.inject(bus.topics.snapshot("door"), STRANGER, user_properties={"meta": '{"seq": 1}'})  # whose?
        results = [RecognitionResult.model_validate(r) for r in bus.json(bus.topics.result("door"))]
        assert [(r.event_id, r.seq, r.verdict, r.faces) for r in results] == [
            ("e1", 0, Verdict.NO_FACE, []),
            ("e2", 3, Verdict.NO_FACE, []),
        ]
        assert results[0].error is not None and "not an image" in results[0].error
        assert results[1].error is not None and "SnapshotMeta" in results[1].error
        assert [e.error for e in bus.errors] == ["bad_payload"] * 3
        assert bus.payloads(bus.topics.alert("door")) == []
    finally:
        service.stop()
