"""The remote commands against a real mosquitto: `--json` everywhere, `arm`/`disarm`/`enable`/`disable`
wait for the node to confirm, a command for a camera that does not exist (or is down) fails, and the
visit history and the visitors come from a real recognizer's archive over MQTT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.bus import Message, MqttBus
from homesec.contract import (
    META_PROPERTY,
    Alert,
    ArmCommand,
    ArmedState,
    CameraEnabled,
    EnableCommand,
    GalleryResult,
    RecognitionResult,
    Role,
    SnapshotMeta,
    Topics,
    meta_property,
    parse,
    parse_gallery_command,
)
from homesec.requests import send_answer
from recognizer_node.pipeline import Recognizer
from tests.conftest import FACES
from tests.mqtt_helpers import Broker, Collector

pytestmark = pytest.mark.integration
T = Topics()


class Cli:
    def __init__(self, broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = broker.directory / "cli.toml"  # its data dir holds the admin's password
        self.config.write_text(f'data_dir = "{broker.directory}"\n[mqtt]\nport = {broker.port}\n')
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        from homesec.cli import main

        code = main(["--config", str(self.config), *argv])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(fresh_broker: Broker, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(fresh_broker, capsys)


def _notifier(broker: Broker) -> MqttBus:
    """Stands in for the notifier: sets the armed state the command asks for, retained."""
    bus = broker.bus(Role.NOTIFIER, "notifier/main")

    def arm(msg: Message) -> None:
        cmd = parse(ArmCommand, msg.payload)
        bus.publish(T.armed, ArmedState(armed=cmd.armed, by=cmd.by), retain=True)

    bus.subscribe(T.armed_cmd, arm)
    bus.publish(T.armed, ArmedState(armed=True, by="default"), retain=True)
    bus.start()
    assert bus.wait_connected(10)
    return bus


def _camera(broker: Broker, camera: str) -> MqttBus:
    bus = broker.bus(Role.CAMERA, f"camera/{camera}")

    def enable(msg: Message) -> None:
        cmd = parse(EnableCommand, msg.payload)
        bus.publish(T.camera_enabled(camera), CameraEnabled(camera=camera, enabled=cmd.enabled), retain=True)

    bus.subscribe(T.camera_cmd_enable(camera), enable)
    bus.subscribe(T.camera_cmd_capture(camera), lambda m: None)
    bus.start()
    assert bus.wait_connected(10)
    return bus


def test_arm_and_disarm_wait_for_the_notifier_and_speak_json(fresh_broker: Broker, cli: Cli) -> None:
    assert cli("arm", "--timeout", "1")[0] == 3  # no notifier: nobody confirms
    notifier = _notifier(fresh_broker)
    try:
        code, out, _ = cli("disarm", "--json")
        assert code == 0 and json.loads(out)["armed"] is False and json.loads(out)["by"] == "cli"
        code, out, _ = cli("arm")
        assert (code, out) == (0, "armed (confirmed)\n")
        code, out, _ = cli("arm")  # already armed: confirmed all the same
        assert (code, out) == (0, "armed (confirmed)\n")
    finally:
        notifier.stop()


def test_camera_commands_check_the_camera_and_confirm(fresh_broker: Broker, cli: Cli) -> None:
    camera = _camera(fresh_broker, "porch")
    try:
        code, out, err = cli("capture", "garage")
        assert code == 1 and "no camera 'garage' (known cameras: porch" in err and out == ""
        code, out, err = cli("capture", "garage", "--json")  # a script gets its answer on stdout too
        assert code == 1 and json.loads(out) == {
            "ok": False,
            "error": err.strip().removeprefix("homesec: "),
            "exit_code": 1,
        }
        code, out, _ = cli("capture", "porch", "--json")
        assert code == 0 and json.loads(out)["camera"] == "porch" and json.loads(out)["sent"] is True
        code, out, _ = cli("disable", "porch", "--json")
        assert code == 0 and json.loads(out) | {"ts": None} == {
            "v": 1, "ts": None, "camera": "porch", "enabled": False
        }  # fmt: skip
        assert cli("enable", "porch")[:2] == (0, "camera porch enabled (confirmed)\n")
        assert cli("disable", "garage")[0] == 1
    finally:
        camera.stop()
    code, _, err = cli("capture", "porch")  # it said `stopped` as it went
    assert code == 1 and "camera 'porch' is stopped: nothing sent" in err


def _gallery_node(broker: Broker, answers: dict[str, GalleryResult]) -> MqttBus:
    """Stands in for the recognizer's gallery: answers each command with the result given for its op."""
    bus = broker.bus(Role.RECOGNIZER, "recognizer/main")

    def on(msg: Message) -> None:
        cmd = parse_gallery_command(
            msg.payload, msg.correlation_data.decode() if msg.correlation_data else None
        )
        answer = answers[cmd.op].model_copy(update={"request_id": cmd.request_id, "op": cmd.op})
        send_answer(bus, msg, answer, None)

    bus.subscribe(T.gallery_cmd, on)
    bus.start()
    assert bus.wait_connected(10)
    return bus


def test_forget_and_rename_speak_json(fresh_broker: Broker, cli: Cli) -> None:
    refused = GalleryResult(request_id="x", op="x", ok=False, reason="no one is enrolled as 'bob'")
    done = GalleryResult(request_id="x", op="x", ok=True, labels={"Bobby": 2}, removed=2)
    node = _gallery_node(fresh_broker, {"delete_label": refused, "rename_label": done})
    try:
        code, out, _ = cli("forget", "bob", "--json")
        assert code == 1 and json.loads(out)["reason"] == "no one is enrolled as 'bob'"
        code, out, _ = cli("rename", "bob", "Bobby", "--json")
        assert (
            code == 0
            and json.loads(out)["labels"] == {"Bobby": 2}
            and json.loads(out)["op"] == "rename_label"
        )
        assert cli("forget", "bob")[1] == "refused: no one is enrolled as 'bob'\n"
    finally:
        node.stop()


def test_status_of_a_broker_no_node_ever_used_fails_and_says_which(fresh_broker: Broker, cli: Cli) -> None:
    code, _, err = cli("status")
    assert code == 1 and f"no node has ever connected to the broker at 127.0.0.1:{fresh_broker.port}" in err


@pytest.fixture
def recognizer(fresh_broker: Broker, models_dir: Path, tmp_path: Path) -> Iterator[MqttBus]:
    from recognizer_node.service import RecognizerService
    from recognizer_node.settings import RecognizerSettings

    bus = fresh_broker.bus(Role.RECOGNIZER, "recognizer/main")
    service = RecognizerService(RecognizerSettings(models_dir=models_dir), tmp_path / "rec", bus)
    service.start()
    bus.start()
    assert bus.wait_connected(10)
    yield bus
    service.stop()
    bus.stop()


def _show(broker: Broker, camera: MqttBus, photo: str, event_id: str) -> RecognitionResult:
    watch = Collector(broker, T.result("door"))
    try:
        meta = SnapshotMeta(
            camera="door", event_id=event_id, seq=0, burst=1, trigger="manual", width=640, height=480
        )
        assert camera.publish_confirmed(
            T.snapshot("door"), (FACES / photo).read_bytes(), user_properties=meta_property(meta)
        )
        msg = watch.wait_for(lambda m: event_id.encode() in m.payload, timeout=30)
        return parse(RecognitionResult, msg.payload)
    finally:
        watch.close()


def test_visits_and_visitors_from_the_recognizers_archive(
    fresh_broker: Broker, recognizer: MqttBus, cli: Cli
) -> None:
    camera = fresh_broker.bus(Role.CAMERA, "camera/door")
    camera.start()
    try:
        assert camera.wait_connected(10)
        for n in range(2):  # the same stranger twice: a recurring visitor
            assert _show(fresh_broker, camera, "stranger.png", f"ev{n}").verdict == "unknown"
        assert _show(fresh_broker, camera, "rose_a.jpg", "ev2").verdict == "unknown"
    finally:
        camera.stop()
    code, out, _ = cli("visits", "--json", "--limit", "2")
    page = json.loads(out)
    assert code == 0 and page["total"] == 3 and page["next_offset"] == 2
    assert [e["event_id"] for e in page["events"]] == ["ev2", "ev1"]  # newest first
    code, out, _ = cli("visits", "--camera", "garage")
    assert (code, out) == (0, "0 of 0 visit(s)\n")
    code, out, _ = cli("visits", "--since", "1h", "--verdict", "unknown")
    assert code == 0 and out.splitlines()[-1] == "3 of 3 visit(s)" and "event ev0" in out
    code, out, _ = cli("visitors", "--json")
    visitors = json.loads(out)
    assert code == 0 and max(v["events"] for v in visitors) == 2
    recurring = next(v["visitor"] for v in visitors if v["events"] == 2)
    code, out, _ = cli("visits", "--visitor", str(recurring), "--json")
    assert {e["event_id"] for e in json.loads(out)["events"]} == {"ev0", "ev1"}
    code, out, _ = cli("visitors", "dismiss", str(recurring), "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = cli("visitors")
    assert code == 0 and f"visitor {recurring} " not in out
    code, out, _ = cli("visitors", "name", "999999", "Carol")
    assert code == 1 and out.startswith("refused: ")


def test_train_takes_the_photos_of_a_directory_one_result_each(
    recognizer: MqttBus, cli: Cli, tmp_path: Path
) -> None:
    photos = tmp_path / "obama"
    (photos / "older").mkdir(parents=True)
    for name, source in (
        ("b.JPG", "obama_other.jpg"),
        ("a.jpg", "obama_train.jpg"),
        ("older/c.jpg", "rose_a.jpg"),
    ):
        (photos / name).write_bytes((FACES / source).read_bytes())
    (photos / "notes.txt").write_text("not a photo")
    code, out, _ = cli("train", "obama", str(photos), "--json")
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(Path(r["path"]).name, r["ok"]) for r in results] == [
        ("a.jpg", True),
        ("b.JPG", True),
    ]
    code, out, err = cli(
        "train", "obama", str(photos / "older" / "c.jpg"), str(tmp_path / "nothing"), "--force"
    )
    assert code == 1 and "nothing: cannot read" in err and "enrolled as 'obama'" in out
    (tmp_path / "empty").mkdir()
    code, _, err = cli("train", "obama", str(tmp_path / "empty"))
    assert code == 1 and "empty: no photo in it (.jpg, .jpeg, .png)" in err


def test_not_names_the_person_and_can_be_taken_back(
    recognizer: MqttBus, cli: Cli, fresh_broker: Broker
) -> None:
    code, out, _ = cli("train", "José", str(FACES / "obama_train.jpg"))
    assert code == 0 and "enrolled as 'José' (label 'Jose')" in out
    camera = fresh_broker.bus(Role.CAMERA, "camera/door")
    camera.start()
    try:
        assert camera.wait_connected(10)
        assert _show(fresh_broker, camera, "obama_probe.jpg", "ev-not").faces[0].label == "Jose"
    finally:
        camera.stop()
    code, out, _ = cli("not", "José", "--event", "ev-not")
    assert code == 0 and "that face is not 'José'" in out
    undo = out.splitlines()[-1]
    assert undo.startswith("(a mistake? take it back: homesec not --undo "), out
    negative = undo.rsplit(" ", 1)[1].rstrip(")")
    assert "not José\t1 face marked as not them" in cli("labels")[1]  # the name, as everywhere else
    code, out, _ = cli("not", "--undo", negative, "--json")
    assert code == 0 and json.loads(out)["op"] == "undo_not" and json.loads(out)["negatives"] == {}
    assert "marked as not them" not in cli("labels")[1]
    code, out, _ = cli("not", "--undo", negative)
    assert code == 1 and out.startswith(f"refused: no negative {negative}")
    assert cli("not", "José", "--undo", negative)[0] == 2  # one or the other
    assert cli("not")[0] == 2


def test_visits_find_and_show_a_person_by_their_display_name(
    recognizer: MqttBus, cli: Cli, fresh_broker: Broker
) -> None:
    assert cli("train", "José", str(FACES / "obama_train.jpg"))[0] == 0
    camera = fresh_broker.bus(Role.CAMERA, "camera/door")
    camera.start()
    try:
        assert camera.wait_connected(10)
        assert _show(fresh_broker, camera, "obama_probe.jpg", "ev-jose").faces[0].name == "José"
        assert _show(fresh_broker, camera, "rose_a.jpg", "ev-rose").verdict == "unknown"
    finally:
        camera.stop()
    for person in ("José", "josé", "Jose"):  # as `labels` shows it, in any case, or the label
        code, out, _ = cli("visits", "--person", person)
        assert code == 0 and out.splitlines()[-1] == "1 of 1 visit(s)", (person, out)
        assert " José " in out.splitlines()[0] and "event ev-jose" in out
    code, out, _ = cli("visits", "--person", "José", "--json")
    assert [e["event_id"] for e in json.loads(out)["events"]] == ["ev-jose"]
    code, out, _ = cli("visitors", "--json")
    (rose,) = [v["visitor"] for v in json.loads(out)]
    code, out, _ = cli("visitors", "name", str(rose), "Zoë")
    assert code == 0 and out.startswith(f"visitor {rose} is 'Zoë' from now on"), out
    code, out, _ = cli("visitors")
    assert code == 0 and f"visitor {rose} " in out and "named 'Zoë'" in out, out


def test_the_alert_photo_of_a_capture_names_the_person_in_any_script(
    recognizer: MqttBus, cli: Cli, fresh_broker: Broker, rec: Recognizer
) -> None:
    assert cli("train", "José", str(FACES / "obama_train.jpg"))[0] == 0
    alerts = Collector(fresh_broker, T.alert("door"), role=Role.NOTIFIER)
    camera = fresh_broker.bus(Role.CAMERA, "camera/door")
    camera.start()
    try:
        assert camera.wait_connected(10)
        _show(fresh_broker, camera, "obama_probe.jpg", "ev-photo")  # `capture --image`: a manual one
        msg = alerts.wait_for(lambda m: b"ev-photo" in m.user_properties.get(META_PROPERTY, "").encode(), 30)
    finally:
        camera.stop()
        alerts.close()
    faces = parse(Alert, msg.user_properties[META_PROPERTY].encode()).faces
    assert [f.name for f in faces] == ["José"]
    jpeg = (FACES / "obama_probe.jpg").read_bytes()
    assert msg.payload == rec.annotate(jpeg, faces)  # the boxes read `José 0.xx`, not the label `Jose`
    assert msg.payload != rec.annotate(jpeg, [f.model_copy(update={"name": None}) for f in faces])


def test_a_training_with_no_answer_says_a_retry_is_safe(cli: Cli) -> None:
    code, _, err = cli("train", "José", str(FACES / "obama_train.jpg"), "--timeout", "0.5")
    assert code == 3 and "obama_train.jpg: no answer within 0.5s" in err
    assert "run the same command again, no photo is enrolled twice" in err
