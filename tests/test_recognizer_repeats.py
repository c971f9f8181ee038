"""A snapshot the recognizer already answered (the camera published it again, the broker redelivered it):
the same result again, no second alert, no second archive record; also after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from homesec.contract import RecognitionResult, SnapshotMeta, Verdict, meta_property
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


def same(a: RecognitionResult, b: RecognitionResult) -> bool:
    keep = {"camera", "event_id", "seq", "verdict", "faces"}
    return a.model_dump(include=keep) == b.model_dump(include=keep)


def test_a_repeat_gets_the_same_result_and_no_alert_nor_archive_record(
    tmp_path: Path, rec: Recognizer
) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        first, alert = ops.recognize(meta(), STRANGER)
        assert first.verdict == Verdict.UNKNOWN and alert is not None
        assert ops.history is not None
        stored = ops.history.archive.count()
        again, repeat_alert = ops.recognize(meta(), STRANGER)
        assert repeat_alert is None and same(first, again)
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
        assert repeat_alert is None and same(first, again)  # visitor ids included
        assert again_ops.history.archive.count() == stored
    finally:
        again_ops.close()


def test_without_an_archive_repeats_are_known_from_memory(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec, archive=False)
    try:
        first, alert = ops.recognize(meta(), STRANGER)
        assert alert is not None
        again, repeat_alert = ops.recognize(meta(), STRANGER)
        assert repeat_alert is None and same(first, again)
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
        assert len(bus.payloads(bus.topics.alert("door"))) == 1
    finally:
        service.stop()
