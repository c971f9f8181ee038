"""The notifier over a real mosquitto (project ACL, per-role users) and a real HTTP Telegram stand-in:
an alert from the recognizer role becomes one photo, and `/train` from a photo reaches the recognizer
role on `topics.train` and its TrainResult comes back to the chat, on the notifier's reply topic."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from homesec.bus import Message
from homesec.contract import Alert, Role, TrainRequest, TrainResult, Verdict, meta_property, parse
from homesec.requests import send_answer
from notifier_node.service import NotifierService
from tests.fake_telegram import CHAT, FakeTelegram, jpeg_bytes
from tests.mqtt_helpers import Broker, Collector
from tests.test_notifier_delivery import make_settings

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
