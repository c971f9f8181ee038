"""`POST /api/cameras/{camera}/capture` (the web page's capture button): an admin's request reaches the
camera as its capture command, through a real mosquitto with the recognizer's own broker account."""

from __future__ import annotations

import queue
from pathlib import Path

import httpx

from homesec.bus import Message
from homesec.contract import CaptureCommand, Topics, parse
from recognizer_node.http.server import WithHttp, with_http
from recognizer_node.http.settings import HttpSettings
from recognizer_node.http.tokens import Scope, TokenStore
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.helpers import wait_until
from tests.http_server import rec
from tests.mqtt_helpers import Broker

__all__ = ["rec"]
T = Topics()


def test_a_capture_request_reaches_the_camera(broker: Broker, rec: Recognizer, tmp_path: Path) -> None:
    commands: queue.Queue[Message] = queue.Queue()
    camera = broker.connected(
        "camera-door", "camera/door", (T.camera_cmd_capture("door"), commands.put)
    )  # the deployment's own camera account: it reads its commands only
    bus = broker.bus("recognizer-main", "recognizer/main")  # and the recognizer's own
    service = RecognizerService(RecognizerSettings(models_dir=rec.models_dir), tmp_path, bus, recognizer=rec)
    node = with_http(service, HttpSettings(port=0), tmp_path)
    assert isinstance(node, WithHttp)
    store = TokenStore.of(tmp_path)
    admin, _ = store.create(Scope.ADMIN, "a")
    viewer, _ = store.create(Scope.VIEWER, "v")
    node.start()
    bus.start()
    try:
        assert bus.wait_connected(10)
        wait_until(lambda: "camera/door" in node.api.context.household.state().nodes)
        url = f"{node.api.url}/api/cameras"

        def post(camera_id: str, token: str, **body: object) -> httpx.Response:
            return httpx.post(
                f"{url}/{camera_id}/capture", json=body, headers={"Authorization": f"Bearer {token}"}
            )

        assert post("door", viewer).status_code == 403
        assert post("attic", admin).status_code == 404  # never announced itself
        r = post("door", admin, burst=3)
        assert r.status_code == 202 and r.json()["camera"] == "door"
        cmd = parse(CaptureCommand, commands.get(timeout=10).payload)
        assert cmd.request_id == r.json()["request_id"] and cmd.burst == 3
        assert post("door", admin, burst=99).status_code == 422
    finally:
        node.stop()
        bus.stop()
        camera.stop()
