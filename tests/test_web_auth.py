"""Signing in to the web page: sessions, their cookie, the CSRF token of every change, viewer sessions,
revoked tokens, and where a sign-in may send the browser next."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recognizer_node.http.tokens import Scope, TokenRecord, TokenStore
from recognizer_node.pipeline import Recognizer
from recognizer_node.web import sessions
from recognizer_node.web.sessions import COOKIE, SessionStore, safe_next
from tests.http_server import Api, rec, serve

__all__ = ["rec"]


def record(scope: Scope = Scope.ADMIN, name: str = "t") -> TokenRecord:
    return TokenRecord(id="abc", scope=scope, sha256=f"{scope}-hash", name=name, created="")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------------- the session logic


def test_a_session_is_found_by_its_id_until_closed() -> None:
    store = SessionStore()
    s = store.open(record())
    assert store.get(s.id) is s and store.get("other") is None and store.get(None) is None
    assert s.id != s.csrf and len(s.id) >= 40 and len(s.csrf) >= 40  # 256 random bits each
    store.close(s.id)
    assert store.get(s.id) is None


def test_an_idle_session_ends_and_a_used_one_lives_on() -> None:
    clock = Clock()
    store = SessionStore(idle_s=100, clock=clock)
    used, idle = store.open(record()), store.open(record())
    for _ in range(3):
        clock.now += 60
        assert store.get(used.id) is used
    assert store.get(idle.id) is None


def test_sign_ins_cannot_grow_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 3)
    clock = Clock()
    store = SessionStore(clock=clock)
    opened = []
    for _ in range(5):
        clock.now += 1
        opened.append(store.open(record()))
    assert [store.get(s.id) is not None for s in opened] == [False, False, True, True, True]


def test_the_csrf_token_must_be_the_sessions_own() -> None:
    store = SessionStore()
    a, b = store.open(record()), store.open(record())
    assert a.csrf_matches(a.csrf)
    assert not a.csrf_matches(b.csrf) and not a.csrf_matches("") and not a.csrf_matches(None)


def test_only_an_admin_tokens_session_may_change() -> None:
    store = SessionStore()
    assert store.open(record(Scope.ADMIN)).may_change
    assert not store.open(record(Scope.VIEWER)).may_change


def test_flashes_are_shown_once() -> None:
    s = SessionStore().open(record())
    s.flashes.append(sessions.Flash("done"))
    assert [f.text for f in s.take_flashes()] == ["done"] and s.take_flashes() == []


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/visits?camera=door", "/visits?camera=door"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("visits", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_after_a_sign_in_only_this_sites_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


# ----------------------------------------------------------------------------- over a real server


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def tokens(api: Api) -> tuple[str, str]:
    store = TokenStore.of(api.api.context.tokens.path.parent.parent)
    admin, _ = store.create(Scope.ADMIN, "family")
    viewer, _ = store.create(Scope.VIEWER, "tablet")
    return admin, viewer


def signed_in(api: Api, token: str, **headers: str) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=api.url, headers=headers)
    return client, client.post("/login", data={"token": token, "next": "/people"})


def csrf_of(client: httpx.Client) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get("/people").text)
    assert match
    return match.group(1)


def test_a_page_asks_a_stranger_to_sign_in_first(api: Api) -> None:
    r = httpx.get(f"{api.url}/visits?camera=door")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fvisits%3Fcamera%3Ddoor"
    page = httpx.get(f"{api.url}/login")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert httpx.get(f"{api.url}/img/thumb/e1/0.jpg").status_code == 303  # the photos too
    assert httpx.post(f"{api.url}/armed", data={"armed": "false"}).status_code == 401


def test_signing_in_with_a_token_gives_a_strict_http_only_cookie(api: Api) -> None:
    admin, _ = tokens(api)
    bad, r = signed_in(api, "hsk_not-a-token")
    assert (
        r.status_code == 401
        and "not a valid API token" in r.text
        and COOKIE not in r.headers.get("set-cookie", "")
    )
    client, r = signed_in(api, admin)
    assert r.status_code == 303 and r.headers["location"] == "/people"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert admin not in cookie  # the cookie is a session id, never the token
    assert client.get("/people").status_code == 200
    assert client.get("/login/session").status_code == 204  # what the sign-in page's script asks
    assert bad.get("/login/session").status_code == 401
    behind_tls, r = signed_in(api, admin, **{"X-Forwarded-Proto": "https"})
    assert "Secure" in r.headers["set-cookie"]
    for c in (bad, client, behind_tls):
        c.close()


def test_a_change_needs_the_sessions_csrf_token(api: Api) -> None:
    admin, _ = tokens(api)
    client, _ = signed_in(api, admin)
    csrf = csrf_of(client)
    form = {"label": "sam", "new_label": "samuel"}
    assert client.post("/people/sam/rename", data=form).status_code == 403
    assert client.post("/people/sam/rename", data={**form, "csrf": "forged"}).status_code == 403
    r = client.post("/people/sam/rename", data={**form, "csrf": csrf})
    assert r.status_code == 303  # allowed: no one is called sam, which the next page says
    assert 'class="flash error"' in client.get(r.headers["location"]).text
    assert client.post("/people/sam/rename", data=form, headers={"X-CSRF-Token": csrf}).status_code == 303
    assert client.post("/logout").status_code == 403  # signing out is a change too
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/people").status_code == 303  # signed out
    client.close()


def test_a_viewer_session_looks_but_cannot_change(api: Api) -> None:
    _, viewer = tokens(api)
    client, _ = signed_in(api, viewer)
    csrf = csrf_of(client)
    assert "Add a person" not in client.get("/people").text
    r = client.post("/armed", data={"armed": "false", "csrf": csrf})
    assert r.status_code == 403 and "viewer token" in r.text
    assert client.post("/search", data={"csrf": csrf}, files={"photo": ("x.jpg", b"no")}).status_code == 200
    client.close()


def test_revoking_the_token_ends_its_sessions(api: Api) -> None:
    admin, _ = tokens(api)
    client, _ = signed_in(api, admin)
    assert client.get("/people").status_code == 200
    store = api.api.context.tokens
    (rec_,) = [r for r in store.records() if r.name == "family"]
    store.revoke(rec_.id)
    assert client.get("/people").status_code == 303
    client.close()
