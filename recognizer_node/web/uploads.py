"""How much one multi-photo upload of the People pages may weigh: several photos, each within the API's
`recognizer.http.max_upload_mb`, from an admin's session only (anyone else keeps the API's bound)."""

from __future__ import annotations

from starlette.requests import cookie_parser
from starlette.types import Scope

from recognizer_node.http.limits import Allowance
from recognizer_node.web.sessions import COOKIE

PHOTOS_PATH = "/people/photos"
MAX_PHOTOS = 20  # times the API's bound: a phone's photos are 3-5 MB, and 10 MB takes two or three


def photos_allowance(limit: int) -> Allowance:
    """For `BodyLimit`: MAX_PHOTOS times `limit` for a multi-photo upload by a signed-in admin."""

    def allowance(scope: Scope) -> int | None:
        if scope["method"] != "POST" or scope["path"] != PHOTOS_PATH:
            return None
        web = getattr(scope["app"].state, "web", None)  # made by the page that showed the form
        cookie = dict(scope["headers"]).get(b"cookie", b"").decode("latin-1")
        session = web.sessions.get(cookie_parser(cookie).get(COOKIE)) if web is not None else None
        return MAX_PHOTOS * limit if session is not None and session.may_change else None

    return allowance
