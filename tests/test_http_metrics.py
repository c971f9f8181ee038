"""`/metrics`: Prometheus text with the recognizer's counters, histograms and the gallery size."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from homesec.contract import SnapshotMeta
from recognizer_node.pipeline import Recognizer
from tests.http_server import Api, photo, rec, serve

__all__ = ["rec"]


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def samples(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = api.viewer.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def recognize(api: Api, name: str, seq: int) -> None:
    data = photo(name)
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
    meta = SnapshotMeta(camera="door", event_id="e1", seq=seq, burst=2, trigger="pir", width=w, height=h)
    api.ops.recognize(meta, data)


def test_metrics_count_snapshots_verdicts_alerts_and_the_gallery(api: Api) -> None:
    api.admin.post(
        "/api/image/train", files={"File": ("t.jpg", photo("obama_train.jpg"))}, data={"label": "jamie"}
    )
    recognize(api, "obama_probe.jpg", 0)  # known: no alert
    recognize(api, "biden_train.jpg", 1)  # unknown: an alert
    got = samples(api)
    assert got[("homesec_gallery_enrollments", ())] == 1
    assert got[("homesec_snapshots_processed_total", (("camera", "door"),))] == 2
    assert got[("homesec_verdicts_total", (("verdict", "known"),))] == 1
    assert got[("homesec_verdicts_total", (("verdict", "unknown"),))] == 1
    assert got[("homesec_alerts_total", (("camera", "door"),))] == 1
    assert got[("homesec_stage_seconds_count", (("stage", "embed"),))] == 2
    assert got[("homesec_snapshot_lag_seconds_count", ())] == 2
    trained = (("method", "POST"), ("route", "/api/image/train"), ("status", "200"))
    assert got[("homesec_http_requests_total", trained)] == 1


def test_refusals_are_counted_by_status(api: Api) -> None:
    api.anonymous.get("/metrics")
    api.viewer.delete("/api/gallery/labels/jamie")
    got = samples(api)
    assert (
        got[("homesec_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "401")))]
        == 1
    )
    deleted = (("method", "DELETE"), ("route", "/api/gallery/labels/{label}"), ("status", "403"))
    assert got[("homesec_http_requests_total", deleted)] == 1


def errors(got: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {labels[0][1]: v for (name, labels), v in got.items() if name == "homesec_errors_total"}


def test_refusals_are_counted_as_errors_by_kind(api: Api) -> None:
    api.anonymous.get("/metrics")
    api.viewer.delete("/api/gallery/labels/jamie")
    api.viewer.post("/api/image/match", files={"File": ("x.jpg", b"not an image")})
    api.viewer.get("/api/events", params={"limit": "0"})
    assert errors(samples(api)) == {"http_no_token": 1, "http_scope": 1, "http_invalid": 2}


def test_the_bus_errors_of_the_node_are_counted_by_kind(tmp_path: Path, rec: Recognizer) -> None:
    from recognizer_node.http.server import WithHttp, with_http
    from recognizer_node.http.settings import HttpSettings
    from recognizer_node.http.tokens import Scope, ensure_up_tokens
    from recognizer_node.service import RecognizerService
    from recognizer_node.settings import RecognizerSettings
    from tests.helpers import LocalBus
    from tests.http_server import client

    bus = LocalBus("recognizer/main")
    service = RecognizerService(RecognizerSettings(models_dir=rec.models_dir), tmp_path, bus, recognizer=rec)
    node = with_http(service, HttpSettings(port=0), tmp_path)
    assert isinstance(node, WithHttp)
    node.start()
    try:
        bus.inject(bus.topics.train, b"{not json")
        bus.inject(bus.topics.gallery_cmd, b'{"op": "no_such_op"}')
        assert [e.error for e in bus.errors] == ["bad_payload", "bad_payload"]
        with client(node.api.url, ensure_up_tokens(tmp_path)[Scope.VIEWER].read_text().strip()) as viewer:
            text = viewer.get("/metrics").text
    finally:
        node.stop()
    got = {
        s.labels["kind"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "homesec_errors_total"
    }
    assert got == {"bad_payload": 2}
