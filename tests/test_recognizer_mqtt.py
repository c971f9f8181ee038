"""The recognizer against a real mosquitto (the project's config, ACL and per-role users): training with
an MQTT v5 response topic, snapshots from the camera user turned into results and alerts, the retained
gallery summary, and the `python -m recognizer_node` program starting and stopping cleanly.

Each test has a broker of its own: snapshots go through a shared subscription, which another test's
persistent recognizer session would otherwise share."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from homesec.config import Config
from homesec.contract import (
    Alert,
    Availability,
    GalleryResult,
    GallerySummary,
    ListLabels,
    RecognitionResult,
    Role,
    SnapshotMeta,
    Topics,
    TrainRequest,
    TrainResult,
    meta_property,
    parse,
    parse_meta,
)
from homesec.remote import RemoteClient
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.conftest import FACES
from tests.mqtt_helpers import Broker, Collector

pytestmark = pytest.mark.integration

REPO = Path(__file__).parent.parent
T = Topics()
CAMERA = "door"


def snapshot_meta(seq: int) -> dict[str, str]:
    meta = SnapshotMeta(
        camera=CAMERA, event_id="ev1", seq=seq, burst=2, trigger="pir", width=1480, height=832
    )
    return meta_property(meta)


def test_train_recognize_and_alert_over_the_broker(
    fresh_broker: Broker, models_dir: Path, tmp_path: Path
) -> None:
    broker = fresh_broker
    collector = Collector(broker, T.result(CAMERA), T.alert(CAMERA), T.gallery)
    bus = broker.bus(Role.RECOGNIZER, "recognizer/main")
    service = RecognizerService(RecognizerSettings(models_dir=models_dir), tmp_path, bus)
    service.start()
    bus.start()
    camera = broker.bus(Role.CAMERA, f"camera/{CAMERA}")
    camera.start()
    admin_config = Config(data_dir=tmp_path, mqtt=broker.settings(Role.ADMIN))
    try:
        assert bus.wait_connected(10) and camera.wait_connected(10)
        first = collector.topic(T.gallery)
        assert parse(GallerySummary, first.payload).labels == {}

        with RemoteClient(admin_config) as admin:  # answers come back on its own response topic
            req = TrainRequest(
                label="obama", image_b64=base64.b64encode((FACES / "obama_train.jpg").read_bytes()).decode()
            )
            trained = admin.request(T.train, req, TrainResult, req.request_id, timeout=20)
            assert trained.ok and trained.label == "obama" and trained.enrollment_id is not None
            listing = ListLabels()
            listed = admin.request(T.gallery_cmd, listing, GalleryResult, listing.request_id, timeout=20)
            assert listed.ok and listed.labels == {"obama": 1}
        collector.wait_for(lambda m: m.topic == T.gallery and b'"obama"' in m.payload)
        late = Collector(broker, T.gallery)  # a newcomer gets the state at once: it is retained
        try:
            state = late.topic(T.gallery)
            assert state.retain and parse(GallerySummary, state.payload).labels == {"obama": 1}
        finally:
            late.close()

        assert camera.publish_confirmed(
            T.snapshot(CAMERA), (FACES / "obama_probe.jpg").read_bytes(), user_properties=snapshot_meta(0)
        )
        known = parse(RecognitionResult, collector.topic(T.result(CAMERA), timeout=20).payload)
        assert known.verdict == "known" and [f.label for f in known.faces] == ["obama"]

        assert camera.publish_confirmed(
            T.snapshot(CAMERA), (FACES / "stranger.png").read_bytes(), user_properties=snapshot_meta(1)
        )
        unknown = parse(RecognitionResult, collector.topic(T.result(CAMERA), timeout=20).payload)
        assert unknown.verdict == "unknown" and unknown.seq == 1
        alert_msg = next(m for m in collector.seen if m.topic == T.alert(CAMERA))  # sent before the result
        alert = parse_meta(Alert, alert_msg.user_properties)
        assert alert.verdict == "unknown" and alert_msg.payload[:2] == b"\xff\xd8"
    finally:
        camera.stop()
        service.stop()
        bus.stop()
        collector.close()


def test_the_recognizer_program_starts_and_stops(
    fresh_broker: Broker, models_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "homesec.toml"
    config.write_text(
        f"""
data_dir = "{tmp_path / "data"}"

[mqtt]
port = {fresh_broker.port}

[recognizer]
instance = "r2"
models_dir = "{models_dir}"
"""
    )
    node = "recognizer/r2"
    collector = Collector(fresh_broker, T.available(node), T.gallery)
    env = {
        **os.environ,
        "HOMESEC_MQTT_PASSWORD": fresh_broker.files.passwords["recognizer-r2"],
        "HOMESEC_RECOGNIZER__HTTP__PORT": "0",  # any free port: 8470 may be taken on this machine
    }
    log = tmp_path / "recognizer.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recognizer_node", "--config", str(config)],
            cwd=REPO,
            env=env,
            stderr=log_fh,
        )
    try:
        collector.wait_for(lambda m: m.topic == T.available(node) and m.payload == b"online", timeout=30)
        collector.topic(T.gallery, timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
        collector.wait_for(
            lambda m: m.topic == T.available(node) and m.payload == Availability.STOPPED.value.encode()
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        collector.close()


def test_missing_models_stop_the_program_with_exit_2(fresh_broker: Broker, tmp_path: Path) -> None:
    config = tmp_path / "homesec.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n\n[mqtt]\nport = {fresh_broker.port}\n')
    env = {
        **os.environ,
        "HOMESEC_MQTT_PASSWORD": fresh_broker.files.passwords["recognizer"],
        "HOMESEC_RECOGNIZER__HTTP__PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "recognizer_node", "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "run `homesec models install`" in done.stderr
