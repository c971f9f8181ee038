"""The web page's routes, mounted at `/` of the recognizer's HTTP server beside `/api`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from recognizer_node.web import actions, images, pages, signin
from recognizer_node.web.common import Refused, SignInFirst, refused, sign_in_first

router = APIRouter(include_in_schema=False)
for module in (signin, pages, images, actions):
    router.include_router(module.router)


def mount(app: FastAPI) -> None:
    """The pages and their two refusals (to the sign-in page; a change not allowed, as a page)."""
    app.include_router(router)
    app.add_exception_handler(SignInFirst, sign_in_first)
    app.add_exception_handler(Refused, refused)
