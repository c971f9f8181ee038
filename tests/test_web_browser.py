"""The household's web page in a real browser: Debian's chromium (headless, through its chromedriver)
against the real uvicorn server of a real recognizer on a real mosquitto, with the demo's photos.

Screenshots of every page go to a temporary directory, or to $HOMESEC_WEB_SCREENSHOTS when set
(`HOMESEC_WEB_SCREENSHOTS=docs/web pytest tests/test_web_browser.py` refreshes the documentation's).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from homesec.bus import Message, MqttBus
from homesec.contract import (
    Alert,
    ArmCommand,
    ArmedState,
    CameraEnabled,
    CameraState,
    EnableCommand,
    RecognitionResult,
    Role,
    SnapshotMeta,
    Topics,
    meta_property,
    parse,
    parse_meta,
)
from recognizer_node.http.server import WithHttp, with_http
from recognizer_node.http.settings import HttpSettings
from recognizer_node.http.tokens import Scope, TokenStore
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.helpers import wait_until
from tests.http_server import rec
from tests.mqtt_helpers import Broker, Collector

__all__ = ["rec"]
pytestmark = pytest.mark.integration

REPO = Path(__file__).parent.parent
DEMO = REPO / "demo"
T = Topics()
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DESKTOP, PHONE = (1280, 900), (390, 844)
IMPLICIT_WAIT = 5  # seconds for elements the page is still loading


@dataclass
class House:
    url: str
    admin: str
    viewer: str
    camera: MqttBus
    watch: Collector
    shots: Path

    def visit(self, event_id: str, *frames: str) -> RecognitionResult:
        """The camera's snapshots of one visit, as the camera sends them; the last one's result."""
        result = None
        for seq, name in enumerate(frames):
            meta = SnapshotMeta(
                camera="door", event_id=event_id, seq=seq, burst=len(frames), trigger="motion",
                width=640, height=480,
            )  # fmt: skip
            jpeg = (DEMO / "camera" / name).read_bytes()
            assert self.camera.publish_confirmed(
                T.snapshot("door"), jpeg, user_properties=meta_property(meta)
            )
            msg = self.watch.wait_for(lambda m, s=seq: _is_result(m.topic, m.payload, event_id, s), 30)
            result = parse(RecognitionResult, msg.payload)
        assert result is not None
        return result

    def alerts_of(self, event_id: str) -> list[Alert]:
        alerts = [parse_meta(Alert, m.user_properties) for m in self.watch.seen if m.topic == T.alert("door")]
        return [a for a in alerts if a.event_id == event_id]


def _is_result(topic: str, payload: bytes, event_id: str, seq: int) -> bool:
    if topic != T.result("door"):
        return False
    result = parse(RecognitionResult, payload)
    return result.event_id == event_id and result.seq == seq


@pytest.fixture
def house(fresh_broker: Broker, rec: Recognizer, tmp_path: Path) -> Iterator[House]:
    data = tmp_path / "data"
    watch = Collector(fresh_broker, T.all_results, T.all_alerts, T.camera_cmd_capture("+"))
    bus = fresh_broker.bus(Role.RECOGNIZER, "recognizer/main")
    service = RecognizerService(RecognizerSettings(models_dir=rec.models_dir), data, bus, recognizer=rec)
    node = with_http(service, HttpSettings(port=0), data)
    assert isinstance(node, WithHttp)
    camera = fresh_broker.bus(Role.CAMERA, "camera/door")  # announces camera/door online
    notifier = fresh_broker.bus(Role.NOTIFIER, "notifier/main")
    store = TokenStore.of(data)
    admin, _ = store.create(Scope.ADMIN, "family")
    viewer, _ = store.create(Scope.VIEWER, "kitchen tablet")
    shots = Path(os.environ.get("HOMESEC_WEB_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    node.start()
    try:
        for b in (bus, camera, notifier):
            b.start()
            assert b.wait_connected(10)
        camera.publish(T.camera_enabled("door"), CameraEnabled(camera="door", enabled=True), retain=True)
        camera.publish(T.camera_state("door"), CameraState(camera="door", state="online"), retain=True)
        notifier.publish(T.armed, ArmedState(armed=True, by="telegram"), retain=True)
        answer_commands(camera, notifier)
        yield House(node.api.url, admin, viewer, camera, watch, shots)
    finally:
        for b in (camera, notifier):
            b.stop()
        node.stop()
        bus.stop()
        watch.close()


VIDEO_LOST = CameraState(camera="door", state="offline", reason="connection refused")


def answer_commands(camera: MqttBus, notifier: MqttBus) -> None:
    """The camera and the notifier announce what their commands change, as the real nodes do."""

    def arm(msg: Message) -> None:
        cmd = parse(ArmCommand, msg.payload)
        notifier.publish(T.armed, ArmedState(armed=cmd.armed, by=cmd.by), retain=True)

    def enable(msg: Message) -> None:
        cmd = parse(EnableCommand, msg.payload)
        camera.publish(
            T.camera_enabled("door"), CameraEnabled(camera="door", enabled=cmd.enabled), retain=True
        )

    for subscribed in (
        notifier.subscribe(T.armed_cmd, arm),
        camera.subscribe(T.camera_cmd_enable("door"), enable),
    ):
        assert subscribed.wait_ready(10)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(IMPLICIT_WAIT)
    try:
        yield driver
    finally:
        driver.quit()


# The elements that stick out of the viewport on the right (a phone would scroll the page sideways).
WIDER_THAN_THE_SCREEN = """
const width = document.documentElement.clientWidth;
return [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > width + 1 && !e.closest("nav"))
  .map(e => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`);
"""


def shoot(driver: WebDriver, house: House, name: str, width: int = DESKTOP[0]) -> None:
    """A screenshot of the whole page at `width` (a phone's when narrow), once its images are in."""
    metrics = {"width": width, "height": DESKTOP[1], "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        wait_until(lambda: driver.execute_script("return [...document.images].every(i => i.complete)"))
        wide = driver.execute_script(WIDER_THAN_THE_SCREEN)
        assert wide == [], f"{name}: wider than {width} px (scrolls sideways): {wide}"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": int(height)})
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        (house.shots / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def sign_in(driver: WebDriver, house: House, token: str, then: str = "/visits") -> None:
    driver.delete_all_cookies()
    driver.get(house.url + then)
    assert "/login" in driver.current_url  # not signed in: to the sign-in page first
    driver.find_element(By.NAME, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait_until(lambda: driver.current_url == house.url + then, timeout=10)


def flash(driver: WebDriver) -> str:
    return driver.find_element(By.CSS_SELECTOR, ".flash").text


def present(driver: WebDriver, css: str) -> bool:
    """Whether the loaded page has it, without the implicit wait for elements still to come."""
    driver.implicitly_wait(0)
    try:
        return bool(driver.find_elements(By.CSS_SELECTOR, css))
    finally:
        driver.implicitly_wait(IMPLICIT_WAIT)


def flash_turns(driver: WebDriver, text: str) -> None:
    """Wait for the page after a button, which says `text` (the button's page may still show another)."""

    def says() -> bool:
        try:
            return flash(driver) == text
        except (NoSuchElementException, StaleElementReferenceException):  # between the two pages
            return False

    wait_until(says, timeout=10, interval=0.05)


def camera_card(driver: WebDriver) -> str:
    return driver.find_element(By.CSS_SELECTOR, ".card.camera").text


def card_of(driver: WebDriver, event_id: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"a.card[href='/visits/{event_id}']").text


def session_client(driver: WebDriver, house: House) -> tuple[httpx.Client, str]:
    """An HTTP client with the browser's session cookie, and the session's CSRF token from its page."""
    cookie = driver.get_cookie("homesec_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    client = httpx.Client(base_url=house.url, cookies={"homesec_session": cookie["value"]})
    match = re.search(r'name="csrf" value="([^"]+)"', client.get("/visits").text)
    assert match
    return client, match.group(1)


OWNER = ["1-owner-frame-036.jpg", "1-owner-frame-037.jpg"]
OWNER_MORE = ["1-owner-frame-010.jpg", "1-owner-frame-020.jpg"]
STRANGER = ["2-stranger-frame-036.jpg", "2-stranger-frame-037.jpg"]
STRANGER_AGAIN = ["2-stranger-frame-034.jpg", "2-stranger-frame-035.jpg"]


def test_the_household_names_a_stranger_from_the_visit_page(house: House, browser: WebDriver) -> None:
    driver = browser
    driver.get(house.url + "/login")
    shoot(driver, house, "login")
    shoot(driver, house, "login-phone", width=PHONE[0])
    sign_in(driver, house, house.admin, then="/people")

    # The owner, enrolled from the People page (the demo's enrolment photo).
    driver.find_element(By.NAME, "label").send_keys("owner")
    photos = [DEMO / "enroll" / "owner.jpg", *(DEMO / "camera" / f for f in OWNER_MORE)]
    driver.find_element(By.NAME, "photos").send_keys("\n".join(str(p) for p in photos))  # several at once
    driver.find_element(By.CSS_SELECTOR, "form[action='/people/photos'] button").click()
    assert "3 of 3 photos enrolled as owner" in flash(driver) and "owner.jpg: enrolled" in flash(driver)

    # The demo's two visits: the owner is named, the stranger is not (and alerts).
    assert house.visit("owner-visit", *OWNER).visit.verdict == "known"  # type: ignore[union-attr]
    assert house.visit("stranger-visit", *STRANGER).verdict == "unknown"
    driver.get(house.url + "/visits")
    assert "owner" in card_of(driver, "owner-visit") and "KNOWN" in card_of(driver, "owner-visit")
    assert "unknown" in card_of(driver, "stranger-visit")

    # Enroll the stranger from the visit page, from the clean archived crop.
    driver.find_element(By.CSS_SELECTOR, "a.card[href='/visits/stranger-visit']").click()
    assert driver.find_elements(By.CSS_SELECTOR, ".box.unknown")  # the face, boxed on the photo
    shoot(driver, house, "visit")
    shoot(driver, house, "visit-phone", width=PHONE[0])
    form = driver.find_element(By.CSS_SELECTOR, "form[action='/visits/stranger-visit/1/faces/0/enroll']")
    form.find_element(By.NAME, "label").send_keys("Carol")
    form.find_element(By.TAG_NAME, "button").click()
    assert "Enrolled as Carol" in flash(driver)

    # Her next visit: named, and no alert.
    again = house.visit("carol-again", *STRANGER_AGAIN)
    assert [f.label for f in again.faces] == ["Carol"]
    assert again.visit is not None and again.visit.decided and again.visit.verdict == "known"
    assert house.alerts_of("carol-again") == [] and house.alerts_of("stranger-visit") != []
    driver.get(house.url + "/visits")
    assert "Carol" in card_of(driver, "carol-again")
    shoot(driver, house, "visits")
    shoot(driver, house, "visits-phone", width=PHONE[0])

    # The other pages, as the household sees them.
    driver.get(house.url + "/")
    assert "Armed" in driver.find_element(By.CSS_SELECTOR, ".armed h1").text
    assert "video online" in camera_card(driver)
    shoot(driver, house, "now")
    shoot(driver, house, "now-phone", width=PHONE[0])
    driver.find_element(By.CSS_SELECTOR, "form[action='/cameras/door/capture'] button").click()
    assert "takes a photo" in flash(driver)
    house.watch.topic(T.camera_cmd_capture("door"))  # through the broker, with the recognizer's account
    # Each switch's page shows it done, as its owner announced it, not only sent.
    driver.find_element(By.CSS_SELECTOR, "form[action='/armed'] button").click()
    flash_turns(driver, "Disarmed: no alerts.")  # the next page, not the one the button was on
    assert driver.find_element(By.CSS_SELECTOR, ".armed h1").text == "Disarmed"
    driver.find_element(By.CSS_SELECTOR, "form[action='/cameras/door/enabled'] button").click()
    flash_turns(driver, "Camera door stopped watching.")
    assert "stopped" in camera_card(driver) and "Start watching" in camera_card(driver)
    house.camera.publish(T.camera_state("door"), VIDEO_LOST, retain=True)  # its RTSP source went away
    wait_until(
        lambda: driver.refresh() or "video offline: connection refused" in camera_card(driver), interval=0.2
    )
    driver.get(house.url + "/people")
    shoot(driver, house, "people")
    shoot(driver, house, "people-phone", width=PHONE[0])
    driver.get(house.url + "/people/Carol")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".crop img")) == 1
    shoot(driver, house, "person")
    driver.get(house.url + "/people/owner")  # three photos side by side
    shoot(driver, house, "person-phone", width=PHONE[0])
    driver.get(house.url + "/visitors")
    shoot(driver, house, "visitors")
    shoot(driver, house, "visitors-phone", width=PHONE[0])
    visitor = driver.find_element(By.CSS_SELECTOR, "form[action^='/visitors/'][action$='/name']")
    visitor.find_element(By.NAME, "label").send_keys("Carol")  # her other faces too
    visitor.find_element(By.TAG_NAME, "button").click()
    assert re.fullmatch(r"Visitor \d+ is Carol from now on\.", flash(driver))
    assert "named Carol" in driver.find_element(By.CSS_SELECTOR, ".card.visitor").text
    assert not present(driver, "form[action^='/visitors/'][action$='/name']")  # nothing left to name
    driver.get(house.url + "/search")
    driver.find_element(By.NAME, "photo").send_keys(str(DEMO / "camera" / STRANGER[0]))  # sent on change
    hits = driver.find_elements(By.CSS_SELECTOR, "a.card.visit")
    assert {h.get_attribute("href") for h in hits} >= {f"{house.url}/visits/carol-again"}
    shoot(driver, house, "search")
    shoot(driver, house, "search-phone", width=PHONE[0])

    # A request without the session's CSRF token is refused, and changes nothing.
    client, csrf = session_client(driver, house)
    enroll = "/visits/owner-visit/0/faces/0/enroll"
    assert client.post(enroll, data={"label": "mallory"}).status_code == 403
    assert client.post(enroll, data={"label": "mallory", "csrf": "forged"}).status_code == 403
    assert client.post("/armed", data={"armed": "false"}).status_code == 403
    assert client.post("/armed", data={"armed": "true", "csrf": csrf}).status_code == 303  # with it: done
    driver.get(house.url + "/people")
    assert "mallory" not in driver.page_source
    client.close()


def test_a_viewer_sees_everything_and_changes_nothing(house: House, browser: WebDriver) -> None:
    house.visit("stranger-visit", *STRANGER)
    driver = browser
    sign_in(driver, house, house.viewer, then="/visits/stranger-visit")
    assert driver.find_elements(By.CSS_SELECTOR, ".boxed img")
    assert not present(driver, "form[action$='/enroll']")  # no buttons to press
    driver.get(house.url + "/")
    assert not present(driver, "form[action$='/capture']")
    assert driver.find_element(By.CSS_SELECTOR, ".scope").text.lower() == "viewer"

    client, csrf = session_client(driver, house)  # and the server refuses what a forged form would send
    for path, form in [
        ("/visits/stranger-visit/0/faces/0/enroll", {"label": "mallory"}),
        ("/armed", {"armed": "false"}),
        ("/cameras/door/capture", {}),
        ("/visitors/1/dismiss", {}),
    ]:
        r = client.post(path, data={**form, "csrf": csrf})
        assert r.status_code == 403 and "viewer" in r.text, path
    assert "mallory" not in client.get("/people").text
    assert house.watch.seen and not [m for m in house.watch.seen if m.topic == T.camera_cmd_capture("door")]
    client.close()
