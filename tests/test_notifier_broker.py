"""The notifier over a real mosquitto (project ACL, per-role users) and a real HTTP Telegram stand-in:
an alert from the recognizer role becomes one photo, and `/train` from a photo reaches the recognizer
role on `topics.train` and its TrainResult comes back to the chat, on the notifier's reply topic."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path

import pytest

from homesec.bus import Message, MqttBus
from homesec.contract import Alert, Role, TrainRequest, TrainResult, Verdict, meta_property, parse
from homesec.requests import send_answer
from notifier_node.service import NotifierService
from tests.fake_telegram import CHAT, FakeTelegram, jpeg_bytes
from tests.helpers import wait_until
from tests.mqtt_helpers import Broker, Collector
from tests.test_notifier_delivery import make_settings
from tests.test_notifier_reliability import FullDisk

pytestmark = pytest.mark.integration


def test_alert_and_train_over_a_real_broker(broker: Broker, tmp_path: Path) -> None:
    tg = FakeTelegram().start()
    suffix = str(time.monotonic_ns())[-6:]
    recognizer = broker.bus(Role.RECOGNIZER, f"recognizer/t{suffix}", persistent=False)
    requests: list[TrainRequest] = []

    def on_train(msg: Message) -> None:  # plays the recognizer
        req = parse(TrainRequest, msg.payload)
        requests.append(req)
        result = TrainResult(
            request_id=req.request_id, label=req.label, ok=True, enrollment_id=1, faces_found=1
        )
        send_answer(recognizer, msg, result, recognizer.topics.train_result)

    recognizer.subscribe(recognizer.topics.train, on_train)
    bus = broker.bus(Role.NOTIFIER, "notifier/main", client_id=f"test-notifier-{suffix}", persistent=False)
    service = NotifierService(make_settings(tg.url), tmp_path / "data", bus)
    try:
        service.start()
        bus.start()
        recognizer.start()
        assert bus.wait_connected(10) and recognizer.wait_connected(10)  # connected = subscribed

        snapshot = jpeg_bytes(320, 240)
        alert = Alert(
            camera="door",
            event_id=f"ev{suffix}",
            seq=0,
            verdict=Verdict.UNKNOWN,
            faces=[],
            snapshot_ts="2024-07-01T18:30:05Z",
        )
        recognizer.publish(recognizer.topics.alert("door"), snapshot, user_properties=meta_property(alert))
        tg.wait(lambda: len(tg.ok_calls("sendPhoto")) == 1)
        assert tg.ok_calls("sendPhoto")[0].files["photo"] == snapshot

        photo = jpeg_bytes(640, 480, color=(10, 200, 10))
        tg.push(message=tg.message("", caption="/train alice", photo=tg.add_photo(photo)))
        tg.wait(lambda: any("Enrolled alice" in t for t in tg.texts(CHAT)))
        (req,) = requests
        assert req.label == "alice" and base64.b64decode(req.image_b64) == photo

        viewer = Collector(broker, bus.topics.armed)  # the armed state published at start is retained
        try:
            assert json.loads(viewer.topic(bus.topics.armed).payload)["armed"] is True
        finally:
            viewer.close()
    finally:
        service.stop()
        bus.stop()
        recognizer.stop()
        tg.stop()
    assert tg.shape_errors == []


def test_replica_duplicates_and_a_full_disk_over_a_real_broker(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two recognizer replicas answering one snapshot make one Telegram message; an alert that meets a full
    disk stays unacknowledged, is reported (`retry_later`) and goes out once space is back."""
    disk = FullDisk(monkeypatch)
    caplog.set_level(logging.INFO, logger="notifier_node.service")

    def dropped() -> list[str]:
        return [r.getMessage() for r in caplog.records if "copy dropped" in r.getMessage()]

    tg = FakeTelegram().start()
    suffix = str(time.monotonic_ns())[-6:]
    replicas = [broker.bus(f"recognizer-{r}", f"recognizer/{r}", persistent=False) for r in ("main", "r2")]
    bus = MqttBus(
        broker.settings(Role.NOTIFIER),
        node="notifier/main",
        client_id=f"test-notifier-{suffix}",
        persistent=False,
        retry_s=(0.1, 0.5),
    )
    errors = Collector(broker, bus.topics.error("notifier/main"))
    service = NotifierService(make_settings(tg.url), tmp_path / "data", bus)
    try:
        service.start()
        for b in (bus, *replicas):
            b.start()
            assert b.wait_connected(10)

        def alert(event_id: str) -> None:
            meta = Alert(
                camera="door", event_id=f"{event_id}{suffix}", seq=0, verdict=Verdict.UNKNOWN, faces=[],
                snapshot_ts="2024-07-01T18:30:05Z",
            )  # fmt: skip
            for replica in replicas:  # both processed the snapshot before either's result was seen
                assert replica.publish_confirmed(
                    replica.topics.alert("door"), jpeg_bytes(), user_properties=meta_property(meta)
                )

        alert("twice")
        tg.wait(lambda: len(tg.ok_calls("sendPhoto")) == 1)
        disk.full = True
        alert("full")
        report = errors.wait_for(lambda m: b"retry_later" in m.payload)
        assert b"No space left" in report.payload
        assert len(tg.ok_calls("sendPhoto")) == 1
        disk.full = False
        tg.wait(lambda: len(tg.ok_calls("sendPhoto")) == 2)
        alert("last")  # behind everything the notifier was given
        tg.wait(lambda: len(tg.ok_calls("sendPhoto")) == 3)
        wait_until(lambda: len(dropped()) == 3, 10)  # each alert's second copy met the record
        assert len(tg.ok_calls("sendPhoto")) == 3
    finally:
        service.stop()
        for b in (bus, *replicas):
            b.stop()
        errors.close()
        tg.stop()
    assert tg.shape_errors == []
