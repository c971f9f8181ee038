"""What every route needs: the operations, the settings, the tokens, the limiter and the metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi.params import Depends
from fastapi.types import DecoratedCallable
from pydantic import BaseModel

from homesec.contract import GalleryResult, parse_gallery_command

if TYPE_CHECKING:
    from recognizer_node.captures import Captures
    from recognizer_node.household import Household
    from recognizer_node.http.limits import RateLimiter, RecognitionSlots
    from recognizer_node.http.metrics import Metrics
    from recognizer_node.http.settings import HttpSettings
    from recognizer_node.http.tokens import TokenStore
    from recognizer_node.operations import RecognizerOperations

T = TypeVar("T")


@dataclass
class ApiContext:
    ops: RecognizerOperations
    settings: HttpSettings
    tokens: TokenStore
    limiter: RateLimiter
    metrics: Metrics
    recognitions: RecognitionSlots
    household: Household  # the state routes: the house as the bus shows it
    ready: threading.Event = field(default_factory=threading.Event)  # set while the node runs
    captures: Captures | None = None  # the capture route: None without a bus (refused with 503)


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


class ErrorBody(BaseModel):
    """Every refusal: 400 unreadable body, 401 no or bad token, 403 scope, 404, 413 too large,
    422 a request the recognizer cannot take (not an image, bad label), 429 rate limit, 503 busy or
    unavailable."""

    detail: str


def gallery_command(request: Request, **fields: Any) -> GalleryResult:
    """The answer to the gallery command of these fields (a malformed one raises ContractError: 422)."""
    return context(request).ops.gallery_command(parse_gallery_command(fields))


def changed(request: Request, missing: str, **fields: Any) -> GalleryResult:
    """The answer to the gallery command of these fields; 404 (its reason, else `missing`) when what it
    names is not there (the commands that use it can be refused for no other reason)."""
    answer = gallery_command(request, **fields)
    if not answer.ok:
        raise HTTPException(404, answer.reason or missing)
    return answer


def found(value: T | None, missing: str) -> T:
    """`value`, or a 404 saying `missing` when there is none."""
    if value is None:
        raise HTTPException(404, missing)
    return value


def endpoint(
    router: APIRouter, method: str, path: str, summary: str, needs: list[Depends], **options: Any
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The decorator of a route: `needs` are its dependencies (the scope, a recognition slot); `options`
    the rest of FastAPI's route options (`responses`, `tags`, `response_class`)."""
    return router.api_route(path, methods=[method], dependencies=needs, summary=summary, **options)


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that may refuse with these status codes."""
    return {code: {"model": ErrorBody} for code in codes}
