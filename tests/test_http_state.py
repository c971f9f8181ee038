"""The state routes over a real mosquitto with the project's rendered rules: the recognizer's own MQTT
user reads the house's state and sends the arm and enable commands for admin tokens only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from homesec.contract import ArmedState, Availability, CameraEnabled, Topics
from recognizer_node.http.server import WithHttp, with_http
from recognizer_node.http.settings import HttpSettings
from recognizer_node.http.tokens import Scope, ensure_up_tokens
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.helpers import wait_until
from tests.http_server import client, rec
from tests.mqtt_helpers import Broker, Collector

__all__ = ["rec"]
T = Topics()


@pytest.fixture
def house(fresh_broker: Broker) -> Broker:
    """The retained state the notifier and a camera would have announced."""
    publisher = fresh_broker.bus("publisher", "test/publisher", persistent=False, announce=False)
    publisher.start()
    assert publisher.wait_connected(10)
    for topic, payload in [
        (T.armed, ArmedState(armed=False, by="cli")),
        (T.camera_enabled("door"), CameraEnabled(camera="door", enabled=True)),
        (T.available("camera/door"), Availability.ONLINE.value),
        (T.available("notifier/main"), Availability.ONLINE.value),
    ]:
        assert publisher.publish_confirmed(topic, payload, retain=True)
    publisher.stop()
    return fresh_broker


@pytest.fixture
def node(house: Broker, tmp_path: Path, rec: Recognizer) -> Iterator[WithHttp]:
    """A recognizer as `recognizer-main` (its deployment user), with its API on a free port."""
    bus = house.bus("recognizer-main", "recognizer/main")
    settings = RecognizerSettings(models_dir=rec.models_dir)
    node = with_http(
        RecognizerService(settings, tmp_path, bus, recognizer=rec), HttpSettings(port=0), tmp_path
    )
    assert isinstance(node, WithHttp)
    bus.start()
    assert bus.wait_connected(10)
    node.start()
    yield node
    node.stop()
    bus.stop()


def tokens(tmp_path: Path) -> dict[Scope, str]:
    return {scope: path.read_text().strip() for scope, path in ensure_up_tokens(tmp_path).items()}


def test_the_state_is_what_the_nodes_announced(node: WithHttp, tmp_path: Path) -> None:
    with client(node.api.url, tokens(tmp_path)[Scope.VIEWER]) as viewer:

        def state() -> dict[str, object]:
            r = viewer.get("/api/state")
            assert r.status_code == 200, r.text
            body: dict[str, object] = r.json()
            return body

        wait_until(lambda: state()["cameras"] == {"door": True} and state()["armed"] is False)
        now = state()
        assert now["armed_by"] == "cli"
        assert now["nodes"] == {
            "camera/door": "online",
            "notifier/main": "online",
            "recognizer/main": "online",
        }


def test_an_admin_arms_and_disables_through_the_owners_commands(
    node: WithHttp, house: Broker, tmp_path: Path
) -> None:
    watch = Collector(house, T.armed_cmd, T.camera_cmd_enable("+"))
    try:
        with client(node.api.url, tokens(tmp_path)[Scope.ADMIN]) as admin:
            wait_until(lambda: admin.get("/api/state").json()["cameras"] == {"door": True})
            r = admin.put("/api/state/armed", json={"armed": True})
            assert r.status_code == 202, r.text
            sent = json.loads(watch.topic(T.armed_cmd).payload)
            assert sent["armed"] is True and sent["by"].startswith("http")

            r = admin.put("/api/state/cameras/door/enabled", json={"enabled": False})
            assert r.status_code == 202, r.text
            assert json.loads(watch.topic(T.camera_cmd_enable("door")).payload)["enabled"] is False

            r = admin.put("/api/state/cameras/attic/enabled", json={"enabled": False})
            assert r.status_code == 404 and "attic" in r.json()["detail"]
            r = admin.put("/api/state/cameras/Not%20an%20id/enabled", json={"enabled": False})
            assert r.status_code == 422
    finally:
        watch.close()
    assert [m.topic for m in watch.seen] == [T.armed_cmd, T.camera_cmd_enable("door")]


def test_a_viewer_changes_nothing(node: WithHttp, house: Broker, tmp_path: Path) -> None:
    watch = Collector(house, T.armed_cmd, T.camera_cmd_enable("+"))
    try:
        with client(node.api.url, tokens(tmp_path)[Scope.VIEWER]) as viewer:
            assert viewer.put("/api/state/armed", json={"armed": True}).status_code == 403
            assert viewer.put("/api/state/cameras/door/enabled", json={"enabled": False}).status_code == 403
        with httpx.Client(base_url=node.api.url) as anonymous:
            assert anonymous.get("/api/state").status_code == 401
        # An admin's command after them is the first to arrive: theirs were never sent.
        with client(node.api.url, tokens(tmp_path)[Scope.ADMIN]) as admin:
            assert admin.put("/api/state/armed", json={"armed": False}).status_code == 202
        assert json.loads(watch.topic(T.armed_cmd).payload)["armed"] is False
    finally:
        watch.close()
    assert len(watch.seen) == 1


def test_commands_the_broker_did_not_take_are_refused() -> None:
    from homesec.contract import ContractError
    from recognizer_node.household import CommandNotSent, Household, UnknownCamera

    house = Household()
    house.camera_seen(CameraEnabled(camera="door", enabled=True))
    with pytest.raises(CommandNotSent):  # no bus at all
        house.set_armed(True, by="test")
    house.connect(lambda cmd: False, lambda camera, cmd: False)  # the broker away, or refusing
    with pytest.raises(CommandNotSent):
        house.set_camera_enabled("door", False)
    with pytest.raises(UnknownCamera):
        house.set_camera_enabled("attic", False)
    with pytest.raises(ContractError):
        house.set_camera_enabled("../door", False)
    assert house.state().cameras == {"door": True}  # unchanged: only the camera changes it
