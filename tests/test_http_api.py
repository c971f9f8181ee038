"""The HTTP API on a real uvicorn server: train and match, scopes, upload bounds, bad input."""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from recognizer_node.http.app import OPENAPI_PATH
from recognizer_node.http.settings import HttpSettings
from recognizer_node.pipeline import Recognizer
from tests.http_server import Api, photo, rec, serve

__all__ = ["rec"]  # the module-scoped fixture


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def train(api: Api, name: str, label: str = "jamie") -> dict[str, object]:
    r = api.admin.post("/api/image/train", files={"File": (name, photo(name))}, data={"label": label})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def match(api: Api, data: bytes) -> dict[str, object]:
    r = api.viewer.post("/api/image/match", files={"File": ("photo.jpg", data)})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_train_then_match_the_same_person_and_not_a_stranger(api: Api) -> None:
    trained = train(api, "obama_train.jpg")
    assert trained["ok"] is True and trained["label"] == "jamie"
    assert isinstance(trained["enrollment_id"], int) and trained["faces_found"] == 1

    same = match(api, photo("obama_probe.jpg"))
    assert same["matched"] is True and same["label"] == "jamie"
    assert isinstance(same["similarity"], float) and same["similarity"] > 0.363
    (face,) = same["faces"]  # type: ignore[misc]
    assert face["label"] == "jamie" and face["quality"] is not None and len(face["box"]) == 4

    stranger = match(api, photo("biden_train.jpg"))
    assert stranger["matched"] is False and stranger["label"] is None and stranger["similarity"] is None
    assert stranger["faces"] and all(f["label"] is None for f in stranger["faces"])  # type: ignore[union-attr]


def test_a_refused_training_says_why(api: Api) -> None:
    r = api.admin.post(
        "/api/image/train", files={"File": ("two.jpg", photo("two_faces.jpg"))}, data={"label": "jamie"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and "faces found" in body["reason"]
    assert api.ops.gallery.labels() == {}


def test_health_is_open_and_says_ready(api: Api) -> None:
    r = api.anonymous.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ready" and r.json()["node"] == "recognizer/main"


def test_health_is_503_once_the_api_stops_being_ready(api: Api) -> None:
    api.api.context.ready.clear()
    r = api.anonymous.get("/api/health")
    assert r.status_code == 503 and r.json()["status"] == "starting"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/image/match"),
        ("get", "/api/gallery/labels"),
        ("get", "/metrics"),
        ("post", "/api/image/train"),
    ],
)
def test_no_token_no_access(api: Api, method: str, path: str) -> None:
    r = api.anonymous.request(method, path)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    wrong = api.anonymous.request(method, path, headers={"Authorization": "Bearer hsk_not-a-token"})
    assert wrong.status_code == 401 and "unknown" in wrong.json()["detail"]


def test_the_viewer_changes_nothing(api: Api) -> None:
    enrolled = train(api, "obama_train.jpg")["enrollment_id"]
    refused = [
        api.viewer.post(
            "/api/image/train", files={"File": ("a.jpg", photo("obama_probe.jpg"))}, data={"label": "x"}
        ),
        api.viewer.delete(f"/api/gallery/enrollments/{enrolled}"),
        api.viewer.delete("/api/gallery/labels/jamie"),
        api.viewer.post("/api/gallery/labels/jamie/rename", json={"new_label": "sam"}),
    ]
    assert [r.status_code for r in refused] == [403] * 4
    assert "admin" in refused[0].json()["detail"]
    assert api.ops.gallery.labels() == {"jamie": 1}
    assert api.viewer.get("/api/gallery/labels").status_code == 200


def test_a_revoked_token_is_refused_at_once(api: Api) -> None:
    from recognizer_node.http.tokens import TokenStore

    assert api.viewer.get("/api/gallery/labels").status_code == 200
    store = TokenStore.of(api.ops.gallery.path.parent)
    (viewer,) = [r for r in store.records() if r.scope == "viewer"]
    assert store.revoke(viewer.id) == 1
    assert api.viewer.get("/api/gallery/labels").status_code == 401


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG that says it is `width` x `height`: enough for the size check."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 90)).save(out, format="JPEG")
    return out.getvalue()


def test_bad_uploads_are_refused_with_the_reason(tmp_path: Path, rec: Recognizer) -> None:
    for api in serve(tmp_path, rec, HttpSettings(port=0, max_upload_mb=0.2)):
        big = api.viewer.post("/api/image/match", files={"File": ("big.bin", b"\xff" * 300_000)})
        assert big.status_code == 413 and "limit" in big.json()["detail"]
        pixels = api.viewer.post("/api/image/match", files={"File": ("bomb.png", png_header(8000, 6000))})
        assert pixels.status_code == 422 and "too large" in pixels.json()["detail"]
        text = api.viewer.post("/api/image/match", files={"File": ("x.jpg", b"not an image")})
        assert text.status_code == 422 and "not an image" in text.json()["detail"]
        empty = api.viewer.post("/api/image/match", files={"File": ("x.jpg", b"")})
        assert empty.status_code == 422
        missing = api.viewer.post("/api/image/match", data={"label": "x"})
        assert missing.status_code == 422 and "File" in missing.json()["detail"]
        label = api.admin.post(
            "/api/image/train", files={"File": ("a.jpg", jpeg(50, 50))}, data={"label": "../x"}
        )
        assert label.status_code == 422 and "invalid label" in label.json()["detail"]


def test_a_chunked_upload_over_the_limit_is_refused(tmp_path: Path, rec: Recognizer) -> None:
    for api in serve(tmp_path, rec, HttpSettings(port=0, max_upload_mb=0.1)):

        def chunks() -> Iterator[bytes]:  # no Content-Length: the size is known only while reading
            yield b'--b\r\nContent-Disposition: form-data; name="File"; filename="a.jpg"\r\n\r\n'
            for _ in range(40):
                yield b"x" * 10_000

        r = api.viewer.post(
            "/api/image/match", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert r.status_code == 413


def test_rate_limited_per_token(tmp_path: Path, rec: Recognizer) -> None:
    for api in serve(tmp_path, rec, HttpSettings(port=0, rate_per_minute=30)):  # bursts of 3
        codes = [api.viewer.get("/api/gallery/labels").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = api.viewer.get("/api/gallery/labels")
        assert int(limited.headers["retry-after"]) >= 1
        assert api.admin.get("/api/gallery/labels").status_code == 200  # another token, its own budget


def test_openapi_is_served_with_the_exact_paths(api: Api) -> None:
    spec = api.anonymous.get(OPENAPI_PATH).json()
    assert {"/api/image/train", "/api/image/match", "/api/health"} <= set(spec["paths"])
    train_form = spec["paths"]["/api/image/train"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert train_form  # File and label, by their exact names:
    schema_ref = train_form["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"File", "label"} <= set(spec["components"]["schemas"][schema_ref]["properties"])


READING_POSTS = {"/api/image/match", "/api/search"}  # they take a photo but change nothing


def routes(api: Api) -> list[tuple[str, str]]:
    """(method, path with its parameters filled in) of every operation in the spec."""
    spec = api.anonymous.get(OPENAPI_PATH).json()
    filled = {"label": "jamie", "event_id": "e1"}
    out = []
    for template, operations in spec["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: filled.get(m.group(1), "1"), template)
        out += [(method.upper(), path) for method in operations]
    return out


def test_every_route_but_health_needs_a_token(api: Api) -> None:
    found = routes(api)
    assert len(found) >= 20
    for method, path in found:
        status = api.anonymous.request(method, path).status_code
        assert status == (200 if path == "/api/health" else 401), (method, path)


def test_the_viewer_is_refused_every_change(api: Api) -> None:
    changes = [(m, p) for m, p in routes(api) if m != "GET" and p not in READING_POSTS]
    assert len(changes) >= 5
    for method, path in changes:
        assert api.viewer.request(method, path).status_code == 403, (method, path)
        assert api.admin.request(method, path).status_code != 403, (method, path)


def test_a_face_that_looks_like_someone_else_needs_force(api: Api) -> None:
    train(api, "obama_train.jpg")
    refused = train(api, "obama_probe.jpg", label="sam")
    assert refused["ok"] is False and "looks like jamie" in str(refused["reason"])
    r = api.admin.post(
        "/api/image/train",
        files={"File": ("p.jpg", photo("obama_probe.jpg"))},
        data={"label": "sam", "force": "true"},
    )
    assert r.json()["ok"] is True and api.ops.gallery.labels() == {"jamie": 1, "sam": 1}


def test_recognitions_over_the_cap_wait_then_get_503_and_the_snapshots_go_on(
    tmp_path: Path, rec: Recognizer
) -> None:
    from homesec.contract import SnapshotMeta

    for api in serve(tmp_path, rec, HttpSettings(port=0, max_recognitions=1, recognition_wait_s=0.2)):
        slots = api.api.context.recognitions
        assert slots.take()  # a recognition in progress holds the only slot
        try:
            r = api.viewer.post("/api/image/match", files={"File": ("p.jpg", photo("obama_probe.jpg"))})
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            assert "max_recognitions" in r.json()["detail"]
            train = api.admin.post(
                "/api/image/train", files={"File": ("t.jpg", photo("obama_train.jpg"))}, data={"label": "x"}
            )
            assert train.status_code == 503
            assert api.viewer.get("/api/gallery/labels").status_code == 200  # the rest is not capped
            meta = SnapshotMeta(
                camera="door", event_id="e1", seq=0, burst=1, trigger="pir", width=1480, height=832
            )
            result, _ = api.ops.recognize(meta, photo("obama_probe.jpg"))  # the alert path is not capped
            assert result.faces
        finally:
            slots.give_back()
        assert match(api, photo("obama_probe.jpg"))["faces"]  # the slot is free again
        assert slots.take()  # and every request gave its slot back
        slots.give_back()
