"""What every route needs: the operations, the settings, the tokens, the limiter and the metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from pydantic import BaseModel

if TYPE_CHECKING:
    from recognizer_node.http.limits import RateLimiter
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
    ready: threading.Event = field(default_factory=threading.Event)  # set while the node runs


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


class ErrorBody(BaseModel):
    """Every refusal: 400 unreadable body, 401 no or bad token, 403 scope, 404, 413 too large,
    422 a request the recognizer cannot take (not an image, bad label), 429 rate limit."""

    detail: str


def documented(*codes: int) -> dict[int | str, dict[str, object]]:
    """The `responses=` of a route that may refuse with these status codes."""
    return {code: {"model": ErrorBody} for code in codes}
