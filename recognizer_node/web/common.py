"""What every page and button needs: the signed-in session, the templates, the thumbnail cache, and the
refusals (a sign-in page for a stranger, 403 for a change without its CSRF token or by a viewer)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from recognizer_node.http.context import ApiContext, context
from recognizer_node.http.tokens import TokenStoreError
from recognizer_node.web import views
from recognizer_node.web.password import MARK, Password
from recognizer_node.web.sessions import COOKIE, CSRF_FIELD, Flash, Session, SessionStore, safe_next
from recognizer_node.web.thumbs import ThumbCache, cache_dir

NAV = [
    ("/", "Now"),
    ("/visits", "Visits"),
    ("/people", "People"),
    ("/visitors", "Visitors"),
    ("/search", "Search"),
]
# No script but ours, no framing (clickjacking), nothing fetched from elsewhere. Inline style attributes
# place the face boxes over the photos.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class WebState:
    sessions: SessionStore
    templates: Environment
    thumbs: ThumbCache | None  # None without an archive


class SignInFirst(Exception):
    """Not signed in (or the session's token was revoked): to the sign-in page, then back."""

    def __init__(self, back: str) -> None:
        self.back = back


class Refused(Exception):
    """A change that is not allowed: 403 with the reason, as a page."""

    def __init__(self, status: int, reason: str) -> None:
        self.status, self.reason = status, reason


_state_lock = threading.Lock()


def web(request: Request) -> WebState:
    """The web page's state of this app, made at its first request."""
    app_state = request.app.state
    with _state_lock:
        state: WebState | None = getattr(app_state, "web", None)
        if state is None:
            state = app_state.web = _new_state(context(request))
    return state


def _new_state(ctx: ApiContext) -> WebState:
    env = Environment(
        loader=PackageLoader("recognizer_node.web", "templates"), autoescape=select_autoescape()
    )
    env.filters["when"] = views.when
    env.filters["pct"] = lambda x: "" if x is None else f"{x:.2f}"
    env.filters["pager"] = _pager
    env.filters["source"] = views.source_text
    env.globals["nav"] = NAV
    env.globals["verdict_text"] = views.VERDICT_TEXT
    history = ctx.ops.history
    thumbs = None
    if history is not None:
        max_age_s = (ctx.ops.settings.archive.max_age_days + 1) * 86400
        thumbs = ThumbCache(cache_dir(history.archive.directory), max_age_s)
    return WebState(sessions=SessionStore(), templates=env, thumbs=thumbs)


def session_of(request: Request) -> Session | None:
    """The request's open session whose token is still valid (a revoked token ends its sessions)."""
    state = web(request)
    session = state.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    if not _token_alive(context(request), session.token_sha256):
        state.sessions.close(session.id)
        return None
    return session


def _token_alive(ctx: ApiContext, sha256: str) -> bool:
    if sha256.startswith(MARK):  # opened with the household password: while it is the same
        return Password.beside(ctx.tokens.path).alive(sha256)
    try:
        return any(r.sha256 == sha256 for r in ctx.tokens.records())
    except TokenStoreError:  # an unreadable store refuses everyone, as the API does
        return False


def signed_in(request: Request) -> Session:
    """A dependency of every page: the session, or off to the sign-in page."""
    session = session_of(request)
    if session is None:
        raise SignInFirst(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return session


STALE_FORM = "This form has expired or did not come from this page: reload the page and try again."


def with_csrf(request: Request, csrf: str | None) -> Session:
    """The session of a POST: signed in, and carrying the session's CSRF token (form field or header)."""
    session = signed_in(request)
    if not session.csrf_matches(csrf or request.headers.get("x-csrf-token")):
        raise Refused(403, STALE_FORM)
    return session


def may_change(request: Request, csrf: str | None) -> Session:
    """The session of a change: `with_csrf`, and a token that may change things (not a viewer's)."""
    session = with_csrf(request, csrf)
    if not session.may_change:
        raise Refused(
            403, f"Signed in with a viewer token ({session.token_name}): you can look but not change."
        )
    return session


def page(
    request: Request, session: Session | None, template: str, status: int = 200, **values: Any
) -> Response:
    tpl = web(request).templates.get_template(template)
    html = tpl.render(
        request=request,
        session=session,
        csrf=session.csrf if session else "",
        csrf_field=CSRF_FIELD,
        flashes=session.take_flashes() if session else [],
        here=request.url.path,
        here_full=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def back(session: Session, target: str | None, default: str, *flashes: Flash) -> Response:
    """After a change: its messages for the next page, and 303 to where the form came from."""
    session.flashes.extend(flashes)
    return RedirectResponse(safe_next(target, default), status_code=303)


def jpeg(data: bytes | None) -> Response:
    if data is None:
        return Response(status_code=404, headers={"Cache-Control": "no-store"})
    # Private: photos of people; cached by this browser only, they never change under the same URL.
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


async def sign_in_first(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInFirst)
    if request.method != "GET":
        return HTMLResponse("Signed out: sign in again.", status_code=401, headers=HEADERS)
    return RedirectResponse(f"/login?next={_quote(exc.back)}", status_code=303)


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return page(request, session_of(request), "refused.html", status=exc.status, reason=exc.reason)


def _pager(params: Any, offset: int) -> str:
    """The query string of the same list at another `offset`."""
    from urllib.parse import urlencode

    return urlencode([*((k, v) for k, v in params.multi_items() if k != "offset"), ("offset", str(offset))])


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


STATIC = Path(__file__).parent / "static"
