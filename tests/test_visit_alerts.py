"""One alert per visit, with real models: a stranger's burst alerts once, the owner's not at all, each
frame's result carries the visit's state, and a burst cut short is decided when its window closes."""

from __future__ import annotations

from pathlib import Path

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
from recognizer_node.operations import RecognizerOperations
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.conftest import FACES
from tests.helpers import LocalBus, wait_until

NODE = "recognizer/main"
STRANGER = (FACES / "stranger.png").read_bytes()
OWNER = (FACES / "obama_probe.jpg").read_bytes()


def meta(event: str, seq: int, burst: int = 3) -> SnapshotMeta:
    return SnapshotMeta(camera="door", event_id=event, seq=seq, burst=burst, trigger="pir", width=1, height=1)


def test_a_burst_makes_one_decision_and_one_alert(tmp_path: Path, rec: Recognizer) -> None:
    ops = RecognizerOperations.open(rec.settings, tmp_path, node=NODE, recognizer=rec)
    try:
        ops.train(Training(request_id="t", label="obama", image=(FACES / "obama_train.jpg").read_bytes()))
        owner = [ops.recognize(meta("e1", seq), OWNER) for seq in range(3)]
        assert [alert for _, alert in owner] == [None, None, None]
        assert owner[-1][0].visit is not None and owner[-1][0].visit.verdict == Verdict.KNOWN
        stranger = [ops.recognize(meta("e2", seq), STRANGER) for seq in range(3)]
        alerts = [alert for _, alert in stranger if alert is not None]
        assert len(alerts) == 1 and alerts[0].meta.verdict == Verdict.UNKNOWN
        assert alerts[0].meta.event_id == "e2" and alerts[0].meta.revision == 0
        states = [result.visit for result, _ in stranger]
        assert all(s is not None and s.verdict == Verdict.UNKNOWN for s in states)
        assert [s.frames for s in states if s is not None] == [1, 2, 3]
        assert [r.verdict for r, _ in stranger] == [Verdict.UNKNOWN] * 3  # each frame's own, as before
    finally:
        ops.close()


def test_a_burst_cut_short_alerts_when_its_window_closes(tmp_path: Path, rec: Recognizer) -> None:
    # every unknown face doubtful: the alert waits for the burst, which never comes
    settings = RecognizerSettings(models_dir=rec.models_dir, visit_window_s=0.3, visit_doubt_floor=-0.99)
    bus = LocalBus(NODE)
    service = RecognizerService(settings, tmp_path, bus, recognizer=rec)
    service.start()
    bus.start()
    try:
        service.ops.train(
            Training(request_id="t", label="biden", image=(FACES / "biden_train.jpg").read_bytes())
        )
        bus.inject(bus.topics.snapshot("door"), STRANGER, user_properties=meta_property(meta("e1", 0)))
        # its result is held until the visit is decided, and comes after the alert (test_verdict_ordering)
        wait_until(lambda: bus.payloads(bus.topics.result("door")), timeout=10)
        (result,) = [parse(RecognitionResult, p) for p in bus.payloads(bus.topics.result("door"))]
        assert result.visit is not None and not result.visit.decided
        (msg,) = [m for m in bus.published if m.topic == bus.topics.alert("door")]
        alert = parse_meta(Alert, msg.user_properties)
        assert (alert.event_id, alert.seq, alert.verdict, alert.frames) == ("e1", 0, Verdict.UNKNOWN, 1)
    finally:
        service.stop()
