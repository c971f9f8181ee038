"""Signing in with an API token (`/login`, its form field `token`), signing out, and the static files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from recognizer_node.http.context import context
from recognizer_node.web.common import STATIC, page, session_of, web, with_csrf
from recognizer_node.web.password import Password
from recognizer_node.web.sessions import COOKIE, safe_next

router = APIRouter(include_in_schema=False)
STATIC_FILES = {"app.css": "text/css", "app.js": "text/javascript", "icon.svg": "image/svg+xml"}


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if session_of(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next)


def _login_page(request: Request, next: str, problem: str | None = None, status: int = 200) -> Response:
    password = Password.beside(context(request).tokens.path).path.exists()
    return page(request, None, "login.html", status=status, next=safe_next(next), problem=problem,
                password=password)  # fmt: skip


@router.get("/login/session")
def has_session(request: Request) -> Response:
    """204 when the browser is signed in. The SameSite=Strict cookie is not sent when a link on another
    site (a Telegram message) opens a page, so that page is the sign-in form; its script asks here, with
    the cookie this time, and goes on to the page when the browser was signed in after all."""
    return Response(status_code=204 if session_of(request) else 401, headers={"Cache-Control": "no-store"})


@router.post("/login")
def login(
    request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"
) -> Response:
    ctx = context(request)
    client = request.client.host if request.client else "?"
    if ctx.limiter.take(f"login:{client}") > 0:  # a token cannot be guessed, but keep the log quiet
        return _login_page(request, next, "Too many attempts: wait a minute.", 429)
    record = ctx.tokens.lookup(token.strip()) or Password.beside(ctx.tokens.path).check(token)
    if record is None:
        return _login_page(
            request, next, "That is not a valid API token or password (unknown, revoked, or mistyped).", 401
        )
    session = web(request).sessions.open(record)
    answer = RedirectResponse(safe_next(next), status_code=303)
    answer.set_cookie(
        COOKIE, session.id, httponly=True, samesite="strict", secure=_https(request), path="/",
        max_age=int(web(request).sessions.idle_s),
    )  # fmt: skip
    return answer


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str | None, Form()] = None) -> Response:
    session = with_csrf(request, csrf)
    web(request).sessions.close(session.id)
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_https(request))
    return answer


def _https(request: Request) -> bool:
    """Served over https, directly or behind a TLS reverse proxy that says so."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


@router.get("/static/{name}")
def static(name: str) -> Response:
    media = STATIC_FILES.get(name)
    if media is None:
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=media, headers={"Cache-Control": "public, max-age=3600"})
