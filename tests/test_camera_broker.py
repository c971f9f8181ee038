"""The camera node against a real mosquitto (the project's config, ACL and camera user): a PIR-triggered
snapshot arrives; with the broker stopped snapshots spool to disk and arrive in order after it restarts;
the `python -m camera_node` program runs and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from homesec.bus import Message
from homesec.contract import (
    Availability,
    CameraEnabled,
    MotionEvent,
    Role,
    SnapshotMeta,
    Topics,
    parse,
    parse_meta,
)
from tests.helpers import answer_snapshots, wait_until
from tests.mqtt_helpers import Broker, Collector
from tests.test_camera_service import camera_settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).parent.parent
WALK_IN = REPO / "tests" / "data" / "replay" / "walk_in"
T = Topics()


def pir_settings(camera: str, **extra: Any) -> CameraSettings:
    """The unit tests' settings, PIR-triggered, with a looping replay and a slower burst."""
    fields: dict[str, Any] = {
        "id": camera,
        "trigger": "pir",
        "replay": {"dir": str(WALK_IN), "fps": 20, "loop": True},
        "burst": {"count": 3, "interval_s": 0.05},
    }
    return camera_settings(**(fields | extra))


def test_pir_snapshot_reaches_the_broker(broker: Broker, tmp_path: Path) -> None:
    camera = "pirtest"
    factory = MockFactory()
    collector = Collector(broker, T.snapshot(camera), T.motion(camera), T.camera_enabled(camera))
    bus = broker.bus(Role.CAMERA, f"camera/{camera}")
    svc = CameraService(pir_settings(camera), tmp_path / "data", bus, pin_factory=factory)
    svc.start()  # as the runner does: the service first, then the bus
    bus.start()
    try:
        assert bus.wait_connected(10)
        state = collector.topic(T.camera_enabled(camera))
        assert parse(CameraEnabled, state.payload).enabled
        assert svc.pir.wait_for_no_motion(timeout=1)  # let the sensor's queue settle
        factory.pin(17).drive_high()
        start = parse(MotionEvent, collector.topic(T.motion(camera)).payload)
        assert (start.state, start.trigger) == ("start", "pir")
        msg = collector.topic(T.snapshot(camera))
        meta = parse_meta(SnapshotMeta, msg.user_properties)
        assert (meta.event_id, meta.seq, meta.trigger, meta.width, meta.height) == (
            start.event_id,
            0,
            "pir",
            480,
            360,
        )
        assert msg.payload[:2] == b"\xff\xd8"  # a JPEG
    finally:
        svc.stop()
        bus.stop()
        collector.close()


def snapshot_keys(messages: list[Message]) -> list[tuple[str, int]]:
    """(event, seq) in arrival order, QoS 1 redeliveries folded."""
    keys = [(m.event_id, m.seq) for m in (parse_meta(SnapshotMeta, msg.user_properties) for msg in messages)]
    return list(dict.fromkeys(keys))


def test_snapshots_spool_while_broker_is_down_and_arrive_in_order(
    fresh_broker: Broker, tmp_path: Path
) -> None:
    camera = "spooltest"
    factory = MockFactory()
    got: list[Message] = []
    # A persistent reader session (like the recognizer's): whatever the camera drains after the restart
    # is kept for it even if it reconnects later than the camera.
    reader = fresh_broker.bus(Role.RECOGNIZER, "recognizer/spooltest")
    reader.subscribe(T.snapshot(camera), got.append)
    answer_snapshots(reader, camera)  # and answers them: the camera keeps each one until its result
    reader.start()
    assert reader.wait_connected(10)
    motions = Collector(fresh_broker, T.motion(camera))
    bus = fresh_broker.bus(Role.CAMERA, f"camera/{camera}")
    settings = pir_settings(camera, burst={"count": 4, "interval_s": 0.05})
    svc = CameraService(settings, tmp_path / "data", bus, pin_factory=factory)
    pin = factory.pin(17)
    svc.start()
    bus.start()
    try:
        assert bus.wait_connected(10)
        assert svc.pir.wait_for_no_motion(timeout=1)
        pin.drive_high()  # event 1, broker up: published at once
        wait_until(lambda: len(snapshot_keys(got)) == 4)
        pin.drive_low()
        end = motions.wait_for(lambda m: parse(MotionEvent, m.payload).state == "end")
        first = parse(MotionEvent, end.payload).event_id
        wait_until(lambda: len(svc.sender.spool) == 0)  # event 1 answered before the broker goes

        fresh_broker.stop()
        wait_until(lambda: not bus.connected)
        pin.drive_high()  # event 2, broker down: spooled
        wait_until(lambda: svc.sender.spooled == 4)
        assert len(svc.sender.spool) == 4
        head = svc.sender.spool.peek()
        assert head is not None
        second = parse_meta(SnapshotMeta, head.meta).event_id
        pin.drive_low()

        fresh_broker.start()
        wait_until(lambda: len(snapshot_keys(got)) == 8, timeout=40)
        assert snapshot_keys(got) == [(first, s) for s in range(4)] + [(second, s) for s in range(4)]
        wait_until(lambda: len(svc.sender.spool) == 0)
    finally:
        svc.stop()
        bus.stop()
        reader.stop()
        motions.close()


def test_camera_program_runs_and_stops_cleanly(broker: Broker, tmp_path: Path) -> None:
    camera = "proc"
    config = tmp_path / "homesec.toml"
    config.write_text(
        f"""
data_dir = "{tmp_path / "data"}"

[mqtt]
port = {broker.port}

[camera]
id = "{camera}"
trigger = "motion"
cooldown_s = 0

[camera.replay]
dir = "{WALK_IN}"
fps = 20

[camera.motion]
event_gap_s = 0.3
"""
    )
    collector = Collector(broker, T.snapshot(camera), T.available(f"camera/{camera}"))
    # The harness's camera user (any camera id): "proc" is not one of the test deployment's cameras.
    env = {
        **os.environ,
        "HOMESEC_MQTT__USERNAME": "camera",
        "HOMESEC_MQTT_PASSWORD": broker.files.passwords["camera"],
    }
    log = tmp_path / "camera.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "camera_node", "--config", str(config)], cwd=REPO, env=env, stderr=log_fh
        )
    try:
        msg = collector.topic(T.snapshot(camera), timeout=20)
        assert parse_meta(SnapshotMeta, msg.user_properties).trigger == "motion"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
        collector.wait_for(
            lambda m: (
                m.topic == T.available(f"camera/{camera}")
                and m.payload == Availability.STOPPED.value.encode()
            )
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        collector.close()
