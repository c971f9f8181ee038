"""Frigate as a source, against a stand-in Frigate: its events on a real mosquitto (in the shape Frigate's
docs give for `frigate/events`) and its HTTP API on a real HTTP server. A person event of the Frigate
camera asked for becomes one homesec snapshot of Frigate's JPEG, fetched once; other labels, other
cameras and false positives are ignored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from camera_node.frigate import EventFilter, parse_event
from camera_node.service import CameraService
from camera_node.settings import CameraSettings, FrigateSettings
from homesec.contract import CameraState, CaptureCommand, Role, SnapshotMeta, Topics, parse, parse_meta
from tests.helpers import wait_until
from tests.mqtt_helpers import Broker, Collector, raw_client

pytestmark = pytest.mark.integration

T = Topics()
JPEG = (Path(__file__).parent / "data" / "replay" / "walk_in" / "frame-010.jpg").read_bytes()


def frigate_event(
    kind: str, event_id: str, camera: str = "front_door", label: str = "person", **after: Any
) -> bytes:
    """A `frigate/events` message as docs.frigate.video/integrations/mqtt shows it."""
    state = {
        "id": event_id,
        "camera": camera,
        "frame_time": 1607123961.837752,
        "snapshot": {"frame_time": 1607123965.975463, "box": [415, 489, 528, 700], "area": 12728,
                     "region": [260, 446, 660, 846], "score": 0.77546, "attributes": []},
        "label": label,
        "sub_label": None,
        "top_score": 0.958984375,
        "false_positive": False,
        "start_time": 1607123955.475377,
        "end_time": None if kind != "end" else 1607123970.0,
        "score": 0.7890625,
        "box": [424, 500, 536, 712],
        "area": 23744,
        "ratio": 2.113207,
        "region": [264, 450, 667, 853],
        "current_zones": ["driveway"],
        "entered_zones": ["yard", "driveway"],
        "thumbnail": None,
        "has_snapshot": True,
        "has_clip": True,
        "stationary": False,
        "motionless_count": 0,
        "position_changes": 2,
        "attributes": {"face": 0.86},
        "current_attributes": [],
    }  # fmt: skip
    state.update(after)
    return json.dumps({"type": kind, "before": state, "after": state}).encode()


def test_events_are_filtered_by_label_camera_score_and_seen_once() -> None:
    wanted = EventFilter(FrigateSettings(camera="front_door", min_score=0.5)).wanted
    events = [
        frigate_event("new", "e1"),
        frigate_event("update", "e1"),  # the same tracked object: fetched once
        frigate_event("new", "e2", label="car"),
        frigate_event("new", "e3", camera="garage"),
        frigate_event("new", "e4", false_positive=True),
        frigate_event("new", "e5", has_snapshot=False),
        frigate_event("new", "e6", top_score=0.3),
    ]
    parsed = [parse_event(e) for e in events]
    assert [e is not None and wanted(e) for e in parsed] == [True, False, False, False, False, False, False]
    assert parse_event(b"not json") is None and parse_event(b'{"type": "new"}') is None
    assert parsed[0] is not None and parsed[0].event_id == "frigate-e1"


def test_a_frigate_person_event_becomes_a_snapshot(
    broker: Broker, httpserver: HTTPServer, tmp_path: Path
) -> None:
    event_id = "1607123955.475377-mxklsc"
    httpserver.expect_request(f"/api/events/{event_id}/snapshot.jpg").respond_with_data(
        JPEG, content_type="image/jpeg"
    )
    httpserver.expect_request("/api/front_door/latest.jpg").respond_with_data(JPEG, content_type="image/jpeg")
    httpserver.expect_request("/api/events/other/snapshot.jpg").respond_with_data(
        JPEG, content_type="image/jpeg"
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "frigate-frig.password").write_text(broker.files.passwords["observer"])
    settings = CameraSettings.model_validate(
        {
            "id": "frig",
            "source": "frigate",
            "url": httpserver.url_for("/"),
            "trigger": "manual",
            "frigate": {
                "host": "127.0.0.1",
                "port": broker.port,
                "username": "observer",
                "camera": "front_door",
            },
        }
    )
    collector = Collector(broker, T.snapshot("frig"), T.camera_state("frig"))
    bus = broker.bus(Role.CAMERA, "camera/frig")
    service = CameraService(settings, tmp_path, bus)
    service.start()
    bus.start()
    frigate, code = raw_client(broker, "publisher")
    assert code == 0
    try:
        wait_until(lambda: service.state.state == "online", timeout=10)
        for payload in (
            frigate_event("new", "other", camera="garage"),  # another Frigate camera: not ours
            frigate_event("new", event_id),
            frigate_event("update", event_id),
            frigate_event("end", event_id),
        ):
            frigate.publish("frigate/events", payload, qos=1).wait_for_publish(5)
        snap = collector.wait_for(lambda m: m.topic == T.snapshot("frig"), timeout=10)
        meta = parse_meta(SnapshotMeta, snap.user_properties)
        assert (meta.trigger, meta.event_id, meta.seq, meta.burst) == (
            "frigate",
            "frigate-1607123955_475377-mxklsc",
            0,
            1,
        )
        assert (meta.width, meta.height) == (480, 360) and snap.payload == JPEG
        wait_until(lambda: len(httpserver.log) >= 1)
        fetched = [req.path for req, _resp in httpserver.log]
        assert fetched == [f"/api/events/{event_id}/snapshot.jpg"]  # once, and only ours
        assert httpserver.log[0][0].args.get("bbox") == "0"  # the clean picture, no box drawn on it
        states = [
            parse(CameraState, m.payload).state
            for m in list(collector.seen)
            if m.topic == T.camera_state("frig")
        ]
        assert states[-1] == "online"

        # a capture command (the bot's /snapshot): the Frigate camera's latest picture
        capture = CaptureCommand(request_id="cap1")
        frigate.publish(T.camera_cmd_capture("frig"), capture.to_json(), qos=1).wait_for_publish(5)
        shot = collector.wait_for(lambda m: m.topic == T.snapshot("frig"), timeout=10)
        assert parse_meta(SnapshotMeta, shot.user_properties).event_id == "cap1"
        assert [req.path for req, _resp in httpserver.log][-1] == "/api/front_door/latest.jpg"
    finally:
        frigate.disconnect()
        frigate.loop_stop()
        service.stop()
        bus.stop()
        collector.close()


def test_a_refused_frigate_broker_login_is_an_error(broker: Broker, tmp_path: Path) -> None:
    settings = CameraSettings.model_validate(
        {
            "id": "frigbad",
            "source": "frigate",
            "url": "http://127.0.0.1:9/",
            "frigate": {"host": "127.0.0.1", "port": broker.port, "username": "observer"},
        }
    )
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "frigate-frigbad.password").write_text("wrong")
    bus = broker.bus(Role.CAMERA, "camera/frigbad")
    service = CameraService(settings, tmp_path, bus)
    service.start()
    try:
        wait_until(lambda: service.state.state == "error", timeout=10)
        assert "refused" in (service.state.reason or "")
    finally:
        service.stop()


@pytest.mark.parametrize("auth", ["digest", "basic"])
def test_frigate_behind_a_basic_auth_proxy_answers_with_the_camera_password(
    httpserver: HTTPServer, tmp_path: Path, auth: str
) -> None:
    """docs/cameras.md: Frigate's authenticated port behind a proxy that takes basic (or digest)
    auth, with camera.username and the camera's password file. A basic-only proxy must be answered
    whichever `camera.auth` is set (digest, the default, answers the challenge it gets)."""
    from werkzeug import Request, Response

    from camera_node.frigate import FrigateSource
    from homesec.broker import free_port

    def proxy(request: Request) -> Response:
        given = request.authorization
        if given is None or (given.type, given.username, given.password) != ("basic", "homesec", "pr0xy"):
            return Response("no", status=401, headers={"WWW-Authenticate": 'Basic realm="frigate"'})
        return Response(JPEG, mimetype="image/jpeg")

    httpserver.expect_request("/api/front_door/latest.jpg").respond_with_handler(proxy)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "camera-frig.password").write_text("pr0xy")
    settings = CameraSettings.model_validate(
        {
            "id": "frig",
            "source": "frigate",
            "url": httpserver.url_for("/"),
            "username": "homesec",
            "auth": auth,
            "trigger": "manual",
            "frigate": {"host": "127.0.0.1", "port": free_port(), "camera": "front_door"},  # no broker
        }
    )
    got: list[tuple[bytes, str | None, Any]] = []
    source = FrigateSource.from_settings(settings, tmp_path, None)
    source.on_snapshot = lambda jpeg, event_id, trigger: got.append((jpeg, event_id, trigger))
    source.start()
    try:
        source.capture("cap1")
        wait_until(lambda: len(got) == 1, timeout=10)
        assert got == [(JPEG, "cap1", "manual")]
    finally:
        source.stop()


def test_homesec_up_names_a_frigate_alert_by_its_whole_id() -> None:
    """`homesec up` shortens event ids to 8 characters; a Frigate event's would all read 'frigate-'."""
    from homesec.bus import Message
    from homesec.contract import Delivered
    from homesec.up import describe

    def line(event_id: str) -> str | None:
        sent = Delivered(event_id=event_id, camera="frontdoor", channel="outbox")
        return describe(T, Message(T.delivered, sent.to_json()))

    frigate_id = "frigate-1607123955_475377-mxklsc"
    assert line(frigate_id) == f"[notifier] alert {frigate_id} from frontdoor sent to the outbox"
    assert line("1103b138aa9c4c0e") == "[notifier] alert 1103b138 from frontdoor sent to the outbox"
