"""What every route needs: the operations, the settings, the tokens, the limiter and the metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from pydantic import BaseModel

from homesec.contract import GalleryResult, parse_gallery_command

if TYPE_CHECKING:
    from recognizer_node.household import Household
    from recognizer_node.http.limits import RateLimiter, RecognitionSlots
    from recognizer_node.http.metrics import Metrics
    from recognizer_node.http.settings import HttpSettings
    from recognizer_node.http.tokens import TokenStore
    from recognizer_node.operations import RecognizerOperations


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


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that may refuse with these status codes."""
    return {code: {"model": ErrorBody} for code in codes}
