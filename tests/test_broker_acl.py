"""The shipped Mosquitto config on a real broker: authentication and per-role ACLs (MQTT v5 codes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from homesec.broker import render_acl
from homesec.contract import Topics
from tests.mqtt_helpers import Broker, Collector, publish_reason, raw_client

NOT_AUTHORIZED = 135
T = Topics()
REPO = Path(__file__).parent.parent


def test_committed_acl_is_the_rendered_one() -> None:
    assert (REPO / "mosquitto" / "acl").read_text() == render_acl("homesec")


def test_anonymous_and_wrong_password_are_refused(broker: Broker) -> None:
    _, code = raw_client(broker, None)
    assert code == NOT_AUTHORIZED
    _, code = raw_client(broker, "camera", password="not-the-password")
    assert code == NOT_AUTHORIZED
    client, code = raw_client(broker, "camera")
    assert code == 0
    client.disconnect()


ALLOWED = {
    "camera": [T.snapshot("door"), T.motion("door"), T.camera_enabled("door"), T.available("camera/door")],
    "recognizer": [T.result("door"), T.alert("door"), T.gallery, T.train_result, "homesec/reply/x"],
    "notifier": [T.train, T.train_raw("alice"), T.gallery_cmd, T.camera_cmd_capture("door"), T.armed],
    "admin": [T.train, T.gallery_cmd, T.camera_cmd_enable("door"), T.armed_cmd],
}
REFUSED = {
    "camera": [T.train, T.train_raw("alice"), T.result("door"), T.alert("door"), T.gallery_cmd],
    "recognizer": [T.snapshot("door"), T.armed, T.camera_cmd_capture("door")],
    "notifier": [T.snapshot("door"), T.alert("door"), T.gallery],
    "admin": [T.snapshot("door"), T.alert("door"), T.gallery],
    "viewer": [T.train, T.snapshot("door"), "anything"],
}


@pytest.mark.parametrize("role", sorted(set(ALLOWED) | set(REFUSED)))
def test_each_role_publishes_only_its_topics(broker: Broker, role: str) -> None:
    client, code = raw_client(broker, role)
    assert code == 0
    try:
        for topic in ALLOWED.get(role, []):
            # 0 = delivered, 16 = accepted but no subscriber yet; >= 128 = refused
            assert publish_reason(client, topic) < 128, f"{role} should publish {topic}"
        for topic in REFUSED.get(role, []):
            assert publish_reason(client, topic) == NOT_AUTHORIZED, f"{role} must not publish {topic}"
    finally:
        client.disconnect()


def test_only_the_recognizer_reads_snapshots(broker: Broker) -> None:
    readers = {
        role: Collector(broker, T.all_snapshots, role=role) for role in ("recognizer", "notifier", "camera")
    }
    try:
        cam, _ = raw_client(broker, "camera")
        assert publish_reason(cam, T.snapshot("door"), b"\xff\xd8jpeg") < 128
        readers["recognizer"].topic(T.snapshot("door"), timeout=5)
        # the denied subscriptions were "granted" but deliver nothing
        with pytest.raises(AssertionError):
            readers["notifier"].topic(T.snapshot("door"), timeout=1)
        with pytest.raises(AssertionError):
            readers["camera"].topic(T.snapshot("door"), timeout=0.5)
        cam.disconnect()
    finally:
        for c in readers.values():
            c.close()
