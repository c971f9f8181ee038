"""A recognizer's HTTP API on a real uvicorn server (a free port), with the real models and tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from recognizer_node.household import Household
from recognizer_node.http.server import HttpApi
from recognizer_node.http.settings import HttpSettings
from recognizer_node.http.tokens import Scope, TokenStore
from recognizer_node.operations import RecognizerOperations
from recognizer_node.pipeline import Recognizer
from recognizer_node.settings import RecognizerSettings
from tests.conftest import FACES

NODE = "recognizer/main"


def photo(name: str) -> bytes:
    return (FACES / name).read_bytes()


@dataclass
class Api:
    api: HttpApi
    ops: RecognizerOperations
    admin: httpx.Client
    viewer: httpx.Client
    anonymous: httpx.Client

    @property
    def url(self) -> str:
        return self.api.url


def client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def rec(models_dir: Path) -> Recognizer:
    return Recognizer(RecognizerSettings(models_dir=models_dir), models_dir.parent)


def serve(
    data_dir: Path, rec: Recognizer, http: HttpSettings | None = None, **options: object
) -> Iterator[Api]:
    """An API over fresh operations in `data_dir`, with an admin and a viewer client; stopped after."""
    settings = RecognizerSettings(models_dir=rec.models_dir, **options)
    ops = RecognizerOperations.open(settings, data_dir, node=NODE, recognizer=rec)
    household = Household()
    household.connect(lambda cmd: True, lambda camera, cmd: True)  # the broker takes every command
    api = HttpApi(ops, http or HttpSettings(port=0), data_dir, household)
    store = TokenStore.of(data_dir)
    admin, _ = store.create(Scope.ADMIN, "test admin")
    viewer, _ = store.create(Scope.VIEWER, "test viewer")
    api.start()
    clients = [client(api.url, admin), client(api.url, viewer), client(api.url)]
    try:
        yield Api(api, ops, *clients)
    finally:
        for c in clients:
            c.close()
        api.stop()
        ops.close()
