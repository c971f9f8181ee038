"""Several cameras in one camera node (`[[cameras]]`), run by the node's own program against a real
mosquitto: each camera connects as its own broker user (`camera-door`, `camera-gate`), a camera whose
source fails (a USB webcam that is not there) reports its `error` state while the other goes on, and
`homesec capture door --image FILE` shows the door camera a photo, which it sends as its snapshot."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from camera_node.__main__ import run_cameras
from homesec import cli
from homesec.bus import Message
from homesec.contract import Availability, CameraState, SnapshotMeta, Topics, parse, parse_meta
from tests.helpers import wait_until
from tests.mqtt_helpers import Broker, Collector

pytestmark = pytest.mark.integration

REPO = Path(__file__).parent.parent
WALK_IN = REPO / "tests" / "data" / "replay" / "walk_in"
PHOTO = REPO / "tests" / "data" / "faces"
T = Topics()


def first(collector: Collector, predicate: Callable[[Message], bool]) -> Message:
    """The first message seen so far, or soon, that fits `predicate`."""
    wait_until(lambda: any(predicate(m) for m in list(collector.seen)), timeout=10)
    return next(m for m in list(collector.seen) if predicate(m))


def two_cameras(broker: Broker) -> str:
    return f"""
data_dir = "{broker.directory}"

[mqtt]
host = "127.0.0.1"
port = {broker.port}

[[cameras]]
id = "door"
trigger = "manual"
replay = {{ dir = "{WALK_IN}", fps = 20 }}

[[cameras]]
id = "gate"
source = "usb"
device = "/dev/video-not-here"
reopen_max_s = 1
"""


def test_two_cameras_run_in_one_node_each_as_its_own_user(
    fresh_broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cameras.toml"
    config.write_text(two_cameras(fresh_broker))
    collector = Collector(
        fresh_broker, T.available("camera/+"), T.camera_state("+"), T.snapshot("door"), T.motion("door")
    )
    stop = threading.Event()
    codes: list[int] = []
    node = threading.Thread(target=lambda: codes.append(run_cameras(["--config", str(config)], stop)))
    node.start()
    try:
        for camera in ("door", "gate"):
            online = first(collector, lambda m, c=camera: m.topic == T.available(f"camera/{c}"))  # type: ignore[misc]
            assert online.payload.decode() == Availability.ONLINE
        gate = first(collector, lambda m: m.topic == T.camera_state("gate") and b'"error"' in m.payload)
        assert parse(CameraState, gate.payload).reason == "no such device"
        door = first(collector, lambda m: m.topic == T.camera_state("door"))
        assert parse(CameraState, door.payload).state == "online"
        # `homesec status`: both camera nodes are online, but only one of them sees
        capsys.readouterr()
        assert cli.main(["--config", str(config), "status"]) == 0
        out = capsys.readouterr().out
        assert "camera door sees: online\n" in out and "camera gate sees: error (no such device)\n" in out

        photo = PHOTO / "biden_train.jpg"
        assert cli.main(["--config", str(config), "capture", "door", "--image", str(photo)]) == 0
        snap = first(collector, lambda m: m.topic == T.snapshot("door"))
        meta = parse_meta(SnapshotMeta, snap.user_properties)
        assert (meta.trigger, meta.seq, meta.burst) == ("manual", 0, 1) and snap.payload == photo.read_bytes()
        log = fresh_broker.log()
        assert "camera-door" in log and "camera-gate" in log  # each logged in as its own user
    finally:
        stop.set()
        node.join(20)
        collector.close()
    assert codes == [0]


def test_the_config_refuses_both_forms_and_a_repeated_id(tmp_path: Path) -> None:
    from homesec.config import ConfigError, load_config, node_sections
    from homesec.plugins import plugin_for

    both = tmp_path / "both.toml"
    both.write_text('[camera]\nid = "door"\n\n[[cameras]]\nid = "gate"\n')
    with pytest.raises(ConfigError, match=r"\[camera\] and \[\[cameras\]\]: give one"):
        load_config(both, env={})
    twice = tmp_path / "twice.toml"
    twice.write_text('[[cameras]]\nid = "gate"\n\n[[cameras]]\nid = "gate"\n')
    plugin = plugin_for(cli.Role.CAMERA)
    assert plugin is not None
    with pytest.raises(ConfigError, match="two entries are camera/gate"):
        node_sections(load_config(twice, env={}), plugin)
    single = tmp_path / "single.toml"
    single.write_text('[camera]\nid = "porch"\n')
    assert [s.id for s in node_sections(load_config(single, env={}), plugin)] == ["porch"]


def test_broker_init_makes_an_account_for_every_listed_camera(tmp_path: Path) -> None:
    config = tmp_path / "cameras.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n\n[[cameras]]\nid = "porch"\n\n[[cameras]]\nid = "yard"\n'
    )
    assert cli.main(["--config", str(config), "broker", "init"]) == 0
    secrets = tmp_path / "data" / "secrets"
    assert (secrets / "mqtt-camera-porch.password").exists() and (
        secrets / "mqtt-camera-yard.password"
    ).exists()
    assert not (secrets / "mqtt-camera-door.password").exists()  # [camera], unused, gets no account
