"""The web page's answers to what a user types into its addresses and forms (over a real server)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from recognizer_node.http.settings import HttpSettings
from recognizer_node.pipeline import Recognizer
from tests.http_server import Api, rec, serve
from tests.test_web_auth import csrf_of, signed_in, tokens

__all__ = ["rec"]
DEMO = Path(__file__).parent.parent / "demo"
FACES = Path(__file__).parent / "data" / "faces"


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def test_a_filter_that_means_nothing_says_so_rather_than_showing_everything(api: Api) -> None:
    admin, _ = tokens(api)
    client, _ = signed_in(api, admin)
    page = client.get("/visits", params={"verdict": "bogus"}).text
    assert "&#39;bogus&#39; is not a verdict" in page and "known" in page
    page = client.get("/visits", params={"day": "yesterday"}).text
    assert "&#39;yesterday&#39; is not a day (YYYY-MM-DD)" in page
    client.close()


def test_each_uploaded_photo_says_what_became_of_it_and_how_to_insist(api: Api) -> None:
    admin, _ = tokens(api)
    client, _ = signed_in(api, admin)
    csrf = csrf_of(client)
    owner = (DEMO / "enroll" / "owner.jpg").read_bytes()

    def upload(label: str, *photos: tuple[str, bytes], **boxes: bool) -> str:
        files = [("photos", (name, data, "image/jpeg")) for name, data in photos]
        form = {"label": label, "csrf": csrf, **{box: "true" for box, ticked in boxes.items() if ticked}}
        r = client.post("/people/photos", data=form, files=files, follow_redirects=True)
        assert r.status_code == 200
        return html.unescape(r.text)

    page = upload("owner", ("owner.jpg", owner), ("notes.txt", b"not a photo"))
    assert "1 of 2 photos enrolled as owner" in page and "owner.jpg: enrolled" in page
    assert "notes.txt: not an image" in page
    page = upload("sam", ("again.jpg", owner))  # the same face under another name: the guard asks
    assert "again.jpg: looks like owner" in page
    assert "or tick “even if a photo looks like someone else” and send it again" in page
    assert 'name="force"' in page  # the box it names is on the page it returns to
    assert "again.jpg: enrolled" in upload("sam", ("again.jpg", owner), force=True)
    two = (FACES / "two_faces.jpg").read_bytes()
    page = upload("pair", ("two.jpg", two))
    box = "or tick “a photo with several faces: take the largest” and send it again"
    assert re.search(r"two\.jpg: \d faces found; send a photo with one face, " + box, page)
    assert 'name="largest"' in page and "two.jpg: enrolled" in upload("pair", ("two.jpg", two), largest=True)
    people = html.unescape(client.get("/people").text)  # the identity guard's conflict, and its remedy
    assert "These look alike" in people and re.search(r"Merge (sam into owner|owner into sam)", people)
    client.close()


@pytest.fixture
def small_uploads(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    """An API that takes 100 kB a photo: the demo's camera frames (about 25 kB) fit, owner.jpg does not."""
    yield from serve(tmp_path, rec, HttpSettings(port=0, max_upload_mb=0.1))


def test_several_photos_at_once_may_weigh_more_than_one(small_uploads: Api) -> None:
    api = small_uploads
    admin, viewer = tokens(api)
    client, _ = signed_in(api, admin)
    frames = [(f"{n}.jpg", (DEMO / "camera" / f"1-owner-frame-0{n}.jpg").read_bytes()) for n in range(10, 18)]
    big = ("owner.jpg", (DEMO / "enroll" / "owner.jpg").read_bytes())
    assert sum(len(data) for _, data in frames) > 100_000 * 2  # more than the API's bound in all
    files = [("photos", (name, data, "image/jpeg")) for name, data in [*frames, big]]
    form = {"label": "owner", "csrf": csrf_of(client)}
    page = html.unescape(client.post("/people/photos", data=form, files=files, follow_redirects=True).text)
    assert "8 of 9 photos enrolled as owner" in page  # each frame on its own, the big one refused alone
    assert "owner.jpg: upload of more than" in page and "recognizer.http.max_upload_mb" in page

    # A viewer's session (or none) keeps the API's bound, answered as a page for a browser.
    looker, _ = signed_in(api, viewer)
    r = looker.post("/people/photos", data={"label": "x", "csrf": csrf_of(looker)}, files=files)
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
    assert "send fewer or smaller photos" in r.text
    r = api.admin.post("/api/image/train", files={"File": big}, data={"label": "owner"})
    assert r.status_code == 413 and "max_upload_mb" in r.json()["detail"]  # the API's answer: JSON
    for c in (client, looker):
        c.close()
