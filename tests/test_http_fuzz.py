"""Property-based fuzzing of every endpoint from the API's own OpenAPI spec (schemathesis), against the
real server: no 5xx, and every answer's status, content type, headers and body as the spec says."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import checks

from homesec.contract import SnapshotMeta
from recognizer_node.http.app import OPENAPI_PATH
from recognizer_node.http.settings import HttpSettings
from recognizer_node.pipeline import Recognizer
from tests.http_server import Api, photo, rec, serve

__all__ = ["rec"]

EXAMPLES = 30  # per operation
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, rec: Recognizer) -> Iterator[Api]:
    """A gallery with one person and an archive with one event, so ids 1 exist to be found."""
    limits = HttpSettings(port=0, rate_per_minute=10_000_000)
    for api in serve(tmp_path_factory.mktemp("fuzz"), rec, limits):
        api.admin.post(
            "/api/image/train", files={"File": ("t.jpg", photo("obama_train.jpg"))}, data={"label": "jamie"}
        )
        data = photo("biden_train.jpg")
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
        api.ops.recognize(
            SnapshotMeta(camera="door", event_id="e1", seq=0, burst=1, trigger="pir", width=w, height=h), data
        )
        yield api


def operations(api: Api) -> list[schemathesis.APIOperation]:
    spec = schemathesis.openapi.from_url(api.url + OPENAPI_PATH)
    return [result.ok() for result in spec.get_all_operations()]


def test_every_endpoint_answers_within_its_spec(fuzzed: Api) -> None:
    token = fuzzed.admin.headers["Authorization"]
    found = operations(fuzzed)
    assert len(found) >= 20
    for operation in found:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": token}, checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc
    answered = answers(fuzzed)
    print(sorted(answered.items()))
    for operation in found:  # each was really called, and some calls got through to the operation
        statuses = {status for (route, status) in answered if route == operation.path}
        assert statuses, operation.label


def answers(api: Api) -> dict[tuple[str, str], float]:
    text = api.admin.get("/metrics").text
    return {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "homesec_http_requests_total"
    }


def test_the_spec_names_every_route(fuzzed: Api) -> None:
    paths = set(fuzzed.anonymous.get(OPENAPI_PATH).json()["paths"])
    assert len(paths) >= 18 and "/metrics" in paths and "/api/visitors/{visitor}/name" in paths


def test_bearer_auth_is_in_the_spec(fuzzed: Api) -> None:
    spec = fuzzed.anonymous.get(OPENAPI_PATH).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" not in spec["paths"]["/api/health"]["get"]
    assert spec["paths"]["/api/image/match"]["post"]["security"] == [{"HTTPBearer": []}]
