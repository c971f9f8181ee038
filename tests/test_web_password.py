"""The household password of the web page (`homesec web password`): kept as a scrypt hash only, taken
by `/login`'s `token` field beside API tokens, and its sessions end when it changes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from homesec.cli import main
from recognizer_node.http.tokens import STORE_NAME, Scope, secrets_dir
from recognizer_node.pipeline import Recognizer
from recognizer_node.web.password import Password, PasswordError
from tests.http_server import Api, rec, serve
from tests.test_web_auth import signed_in

__all__ = ["rec"]


def password_of(data_dir: Path) -> Password:
    return Password.beside(secrets_dir(data_dir) / STORE_NAME)


def test_only_the_hash_is_kept_and_only_the_password_matches(tmp_path: Path) -> None:
    password = password_of(tmp_path)
    assert password.check("anything at all") is None  # none set: nobody signs in with one
    with pytest.raises(PasswordError):
        password.set("short", Scope.ADMIN)
    password.set("correct horse", Scope.VIEWER)
    assert "correct horse" not in password.path.read_text()
    assert password.path.stat().st_mode & 0o777 == 0o600
    record = password.check("correct horse")
    assert record is not None and record.scope == Scope.VIEWER and password.alive(record.sha256)
    assert password.check("correct horse ") is None and password.check("") is None
    password.set("correct horse", Scope.VIEWER)  # set again (a new salt): the old sessions end
    assert not password.alive(record.sha256)
    assert password.remove() and not password.remove()


def cli(tmp_path: Path, stdin: str, *argv: str, monkeypatch: pytest.MonkeyPatch) -> int:
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["--config", str(config), "web", "password", *argv])


def test_the_command_sets_and_removes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli(tmp_path, "tiny\n", monkeypatch=monkeypatch) == 2  # too short: nothing set
    assert not password_of(tmp_path).path.exists()
    assert cli(tmp_path, "correct horse\n", "--scope", "viewer", monkeypatch=monkeypatch) == 0
    assert password_of(tmp_path).check("correct horse").scope == Scope.VIEWER  # type: ignore[union-attr]
    assert cli(tmp_path, "", "--remove", monkeypatch=monkeypatch) == 0
    assert cli(tmp_path, "", "--remove", monkeypatch=monkeypatch) == 1


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def test_the_sign_in_form_takes_the_password_in_its_token_field(api: Api) -> None:
    password = Password.beside(api.api.context.tokens.path)
    client, r = signed_in(api, "correct horse")
    assert r.status_code == 401 and "homesec web password" in client.get("/login").text  # how to set one
    password.set("correct horse", Scope.ADMIN)
    assert "API token or password" in client.get("/login").text
    client, r = signed_in(api, "correct horse")
    assert r.status_code == 303 and client.get("/people").status_code == 200
    assert signed_in(api, "wrong horse!")[1].status_code == 401
    password.set("another horse", Scope.ADMIN)  # changed: the old password's sessions end
    assert client.get("/people").status_code == 303
    client.close()
