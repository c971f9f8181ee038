"""The ASGI application: routes, refusals as JSON with the reason, upload bounds and request metrics."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homesec.contract import ContractError
from recognizer_node.http import archive, gallery, health, images, state
from recognizer_node.http.context import ApiContext
from recognizer_node.http.limits import BodyLimit
from recognizer_node.queries import ArchiveOff
from recognizer_node.web.routes import mount as mount_web
from recognizer_node.web.uploads import photos_allowance

log = logging.getLogger(__name__)

OPENAPI_PATH = "/api/openapi.json"
# `homesec_errors_total{kind}` of the HTTP answers that are not a success (docs/http.md, Refusals).
REFUSAL_KINDS = {
    400: "http_unreadable",
    401: "http_no_token",
    403: "http_scope",
    404: "http_not_found",
    413: "http_too_large",
    422: "http_invalid",
    429: "http_rate_limited",
    500: "http_internal",
    503: "http_unavailable",
}


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="homesec recognizer",
        version="1",
        summary="Train and match faces, browse the gallery, the events and the visitors (docs/http.md).",
        openapi_url=OPENAPI_PATH,
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.context = ctx
    for module in (images, gallery, archive, state, health):
        app.include_router(module.router)
    app.include_router(state.cameras)
    mount_web(app)  # the household's pages under / (docs/web.md)
    app.add_exception_handler(ContractError, _contract_error)
    app.add_exception_handler(ArchiveOff, _archive_off)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    limit = ctx.settings.max_upload_bytes
    app.add_middleware(BodyLimit, limit=limit, allowance=photos_allowance(limit))  # several photos at once
    app.add_middleware(_Measured, ctx=ctx)
    return app


async def _contract_error(request: Request, exc: Exception) -> JSONResponse:
    """A request the recognizer cannot take: not an image, too many pixels, a malformed label."""
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _archive_off(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(_problem(e) for e in exc.errors())
    return JSONResponse({"detail": problems}, status_code=422)


def _problem(error: dict[str, object]) -> str:
    loc = error.get("loc")
    where = ".".join(str(p) for p in loc[1:]) if isinstance(loc, list | tuple) and len(loc) > 1 else ""
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("HTTP %s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)


class _Measured:
    """Counts every answer by route template and status, and times it."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.metrics = ctx.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.http(scope["method"], route, status, time.perf_counter() - start)
            if kind := REFUSAL_KINDS.get(status):
                self.metrics.error(kind)
