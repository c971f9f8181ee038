"""The HTTP API as part of the node: started and stopped with it, tokens from the CLI and `homesec up`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from homesec.broker import free_port
from recognizer_node.http.server import WithHttp, with_http
from recognizer_node.http.settings import HttpSettings
from recognizer_node.http.tokens import Scope, TokenStore, ensure_up_tokens, token_file
from recognizer_node.http.up import api_status, up_note, url_file
from recognizer_node.pipeline import Recognizer
from recognizer_node.service import RecognizerService
from recognizer_node.settings import RecognizerSettings
from tests.helpers import LocalBus
from tests.http_server import rec
from tests.mqtt_helpers import Broker

__all__ = ["rec"]


def service(tmp_path: Path, rec: Recognizer) -> RecognizerService:
    settings = RecognizerSettings(models_dir=rec.models_dir)
    return RecognizerService(settings, tmp_path, LocalBus("recognizer/main"), recognizer=rec)


def test_the_api_runs_while_the_node_runs(tmp_path: Path, rec: Recognizer) -> None:
    node = with_http(service(tmp_path, rec), HttpSettings(port=0), tmp_path)
    assert isinstance(node, WithHttp)
    node.start()
    url = node.api.url
    token = ensure_up_tokens(tmp_path)[Scope.VIEWER].read_text().strip()
    try:
        assert httpx.get(f"{url}/api/health").json()["status"] == "ready"
        labels = httpx.get(f"{url}/api/gallery/labels", headers={"Authorization": f"Bearer {token}"})
        assert labels.status_code == 200 and labels.json() == []
    finally:
        node.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/health")


def test_status_finds_the_port_the_running_api_took(tmp_path: Path, rec: Recognizer) -> None:
    node = with_http(service(tmp_path, rec), HttpSettings(port=0), tmp_path)
    node.start()
    try:
        assert isinstance(node, WithHttp)
        # what `homesec status` says, from a config that does not know the port (0, or no env override)
        status = api_status(HttpSettings(port=8470), tmp_path)
        assert status == {"http_api": f"{node.api.url}/api", "http_health": "ready"}
    finally:
        node.stop()
    assert not url_file(tmp_path).exists()
    assert api_status(HttpSettings(port=8470), tmp_path)["http_api"] == "http://127.0.0.1:8470/api"


def test_disabled_means_no_api(tmp_path: Path, rec: Recognizer) -> None:
    svc = service(tmp_path, rec)
    assert with_http(svc, HttpSettings(enabled=False), tmp_path) is svc


def test_a_taken_port_leaves_the_node_running_without_its_api(
    tmp_path: Path, rec: Recognizer, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        node = with_http(service(tmp_path, rec), HttpSettings(port=taken.getsockname()[1]), tmp_path)
        node.start()
        node.stop()
    assert "HTTP API off: " in caplog.text and "recognizer.http" in caplog.text


def test_up_says_when_the_api_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        note = up_note(HttpSettings(port=taken.getsockname()[1]), tmp_path)
    assert note is not None and note.startswith("HTTP API off: port ") and "already taken" in note
    assert "HOMESEC_RECOGNIZER__HTTP__PORT" in note


def test_up_makes_the_tokens_once_and_says_where(tmp_path: Path) -> None:
    port = free_port()  # not 8470: a demo on this machine may hold it
    note = up_note(HttpSettings(port=port), tmp_path)
    admin = token_file(tmp_path, Scope.ADMIN)
    url = f"http://127.0.0.1:{port}"
    assert note == f"web page on {url}/ and HTTP API on {url}/api (admin token in {admin})"
    first = admin.read_text()
    assert admin.stat().st_mode & 0o777 == 0o600
    up_note(HttpSettings(), tmp_path)
    assert admin.read_text() == first  # kept across runs
    store = TokenStore.of(tmp_path)
    assert store.lookup(first.strip()).scope == Scope.ADMIN  # type: ignore[union-attr]
    viewer = token_file(tmp_path, Scope.VIEWER).read_text().strip()
    assert store.lookup(viewer).scope == Scope.VIEWER  # type: ignore[union-attr]
    assert first.strip() not in store.path.read_text()  # the store keeps hashes only
    assert up_note(HttpSettings(enabled=False), tmp_path) is None


def test_a_revoked_up_token_is_replaced_at_the_next_up(tmp_path: Path) -> None:
    old = ensure_up_tokens(tmp_path)[Scope.ADMIN].read_text()
    store = TokenStore.of(tmp_path)
    store.revoke(store.lookup(old.strip()).id)  # type: ignore[union-attr]
    new = ensure_up_tokens(tmp_path)[Scope.ADMIN].read_text()
    assert new != old and store.lookup(new.strip()) is not None


def cli(tmp_path: Path, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from homesec.cli import main

    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    code = main(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def status(broker: Broker, http_port: int, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    from homesec.cli import main

    config = broker.directory / "status.toml"
    config.write_text(
        f'data_dir = "{broker.directory}"\n[mqtt]\nport = {broker.port}\n[recognizer.http]\nport = {http_port}\n'
    )
    assert main(["--config", str(config), "status", "--json"]) == 0
    answer: dict[str, object] = json.loads(capsys.readouterr().out)
    return answer


def test_status_says_where_the_api_is_and_whether_it_is_ready(
    tmp_path: Path, rec: Recognizer, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    node = with_http(service(tmp_path, rec), HttpSettings(port=0), tmp_path)
    assert isinstance(node, WithHttp)
    node.start()
    try:
        port = node.api.server.port
        assert status(broker, port, capsys)["recognizer"] == {
            "http_api": f"http://127.0.0.1:{port}/api",
            "http_health": "ready",
        }
    finally:
        node.stop()
    facts = status(broker, port, capsys)["recognizer"]
    assert facts["http_health"].startswith("unreachable")  # type: ignore[index]


def test_token_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(tmp_path, "api", "token", "create", "--scope", "viewer", "--json", capsys=capsys)
    assert code == 0
    created = json.loads(out)
    assert created["scope"] == "viewer" and created["token"].startswith("hsk_")
    store = TokenStore.of(tmp_path)
    assert store.lookup(created["token"]) is not None
    code, out, _ = cli(tmp_path, "api", "token", "list", capsys=capsys)
    assert code == 0 and created["id"] in out and "viewer" in out and created["token"] not in out
    code, _, err = cli(tmp_path, "api", "token", "revoke", "ab", capsys=capsys)
    assert code == 2 and "at least" in err
    code, _, err = cli(tmp_path, "api", "token", "revoke", "ffffffff", capsys=capsys)
    assert code == 1 and "no token" in err
    code, out, _ = cli(tmp_path, "api", "token", "revoke", created["id"], capsys=capsys)
    assert code == 0 and store.lookup(created["token"]) is None


def test_an_unreadable_store_refuses_every_token(tmp_path: Path) -> None:
    store = TokenStore.of(tmp_path)
    token, _ = store.create(Scope.ADMIN, "x")
    store.path.write_text("{not json")
    assert TokenStore.of(tmp_path).lookup(token) is None


def test_the_listening_socket_is_tcp_so_answers_go_out_at_once() -> None:
    from recognizer_node.http.server import _listen

    sock = _listen("127.0.0.1", 0)
    try:  # asyncio disables Nagle only on sockets whose proto says TCP: else ~40 ms per answer
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


WEB = {"fastapi", "starlette", "uvicorn", "recognizer_node.http"}


@pytest.mark.parametrize("module", ["queries", "archive_browse", "operations", "household"])
def test_what_the_api_serves_knows_no_transport(module: str) -> None:
    from tests.test_layers import REPO, TRANSPORT, imports_of, within

    assert not within(imports_of(REPO / "recognizer_node" / f"{module}.py"), TRANSPORT | WEB)


@pytest.mark.parametrize("module", ["settings", "tokens", "up", "cli"])
def test_what_the_config_and_the_cli_load_imports_no_web_framework(module: str) -> None:
    from tests.test_layers import REPO, imports_of, within

    assert not within(
        imports_of(REPO / "recognizer_node" / "http" / f"{module}.py"), WEB - {"recognizer_node.http"}
    )
