"""Health (the one route open to anyone) and the Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from recognizer_node.http.auth import VIEWER
from recognizer_node.http.context import context, documented
from recognizer_node.http.metrics import CONTENT_TYPE

router = APIRouter()


class Health(BaseModel):
    status: Literal["ready", "starting"]  # ready: models and gallery loaded, the node running
    node: str
    model: str
    enrollments: int
    archive: bool  # events, visitors and search are available


@router.get(
    "/api/health",
    tags=["node"],
    summary="Ready?",
    responses={503: {"model": Health, "description": "Not ready (starting or stopping)."}},
)
def health(request: Request, response: Response) -> Health:
    """No token needed. 200 when ready, 503 while the node starts or stops."""
    ctx = context(request)
    ops = ctx.ops
    ready = ctx.ready.is_set()
    if not ready:
        response.status_code = 503
    return Health(
        status="ready" if ready else "starting",
        node=ops.node,
        model=ops.recognizer.model_name,
        enrollments=ops.summary.enrollments,
        archive=ops.history is not None,
    )


@router.get(
    "/metrics",
    dependencies=[VIEWER],
    tags=["node"],
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE: {}}}, **documented(401, 403, 429)},
    response_class=Response,
)
def metrics(request: Request) -> Response:
    return Response(context(request).metrics.render(), media_type=CONTENT_TYPE)
