"""The camera node against a real mosquitto (the project's config, ACL and camera user): a PIR-triggered
snapshot arrives; with the broker stopped snapshots spool to disk and arrive in order after it restarts;
the `python -m camera_node` program runs and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from camera_node.sender import Snapshot
from camera_node.service import CameraService
from camera_node.settings import CameraSettings
from homesec.bus import Message
from homesec.contract import (
    Availability,
    CameraEnabled,
    CameraState,
    MotionEvent,
    Role,
    SnapshotMeta,
    Topics,
    parse,
    parse_meta,
)
from homesec.spool import DiskSpool
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
    available = T.available(f"camera/{camera}")
    collector = Collector(broker, T.snapshot(camera), available, T.camera_state(camera))
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
            lambda m: m.topic == available and m.payload == Availability.STOPPED.value.encode()
        )
        # A clean stop leaves `offline` (stopped) behind, published before `available = stopped`.
        states = [m for m in collector.seen if m.topic == T.camera_state(camera)]
        assert parse(CameraState, states[-1].payload).model_dump(include={"state", "reason"}) == {
            "state": "offline",
            "reason": "stopped",
        }
        stopped = next(m for m in collector.seen if m.topic == available and m.payload == b"stopped")
        assert collector.seen.index(states[-1]) < collector.seen.index(stopped)
        retained = Collector(broker, T.camera_state(camera))
        try:
            assert parse(CameraState, retained.topic(T.camera_state(camera)).payload).reason == "stopped"
        finally:
            retained.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        collector.close()


def test_a_camera_stops_promptly_while_a_silent_broker_holds_its_puback(
    fresh_broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker gone silent (here paused: its connection stays open) acknowledges nothing. Stopping does
    not wait out the snapshot publish's ack timeout, and loses no snapshot: the one being published and
    the one still in memory are both in the spool, for the next run."""
    camera = "silent"
    factory = MockFactory()
    bus = fresh_broker.bus(Role.CAMERA, f"camera/{camera}")
    settings = pir_settings(camera, burst={"count": 2, "interval_s": 0.05}, publish_timeout_s=60)
    svc = CameraService(settings, tmp_path / "data", bus, pin_factory=factory)
    publishing, submitted = threading.Event(), []
    publish, submit = bus.publish_confirmed, svc.sender.submit

    def spy_publish(*args: Any, **kw: Any) -> bool:
        publishing.set()
        return publish(*args, **kw)

    def spy_submit(snapshot: Snapshot) -> None:
        submitted.append(snapshot)
        submit(snapshot)

    monkeypatch.setattr(bus, "publish_confirmed", spy_publish)
    monkeypatch.setattr(svc.sender, "submit", spy_submit)
    mosquitto = fresh_broker.process.proc
    assert mosquitto is not None
    svc.start()
    bus.start()
    try:
        assert bus.wait_connected(10)
        assert svc.pir.wait_for_no_motion(timeout=1)
        mosquitto.send_signal(signal.SIGSTOP)
        factory.pin(17).drive_high()
        assert publishing.wait(10)  # the first snapshot waits for its PUBACK
        wait_until(lambda: len(submitted) == 2)
        started = time.monotonic()
        svc.stop()
        assert time.monotonic() - started < 3  # was the publish timeout (10 s by default)
        assert len(DiskSpool(svc.sender.spool.directory)) == 2
    finally:
        mosquitto.send_signal(signal.SIGCONT)
        svc.stop()
        bus.stop()
