"""The pictures of the pages, for a signed-in browser (the JSON API's image routes want a bearer token):
snapshots, their cached thumbnails and face cuts, enrollment crops and visitors' faces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from recognizer_node import queries
from recognizer_node.http.context import context
from recognizer_node.queries import ArchiveOff
from recognizer_node.web.common import jpeg, signed_in, web
from recognizer_node.web.thumbs import face_cut, thumbnail

router = APIRouter(prefix="/img", include_in_schema=False, dependencies=[Depends(signed_in)])
Id = Annotated[int, Path(ge=0, le=2**63 - 1)]


def _snapshot(request: Request, event_id: str, seq: int) -> bytes | None:
    try:
        return queries.snapshot(context(request).ops, event_id, seq)
    except ArchiveOff:
        return None


def _cached(request: Request, key: str, make: Callable[[], bytes | None]) -> Response:
    thumbs = web(request).thumbs
    if thumbs is None:
        return jpeg(None)
    return jpeg(thumbs.get(key, make))


@router.get("/snapshot/{event_id}/{seq}.jpg")
def snapshot(request: Request, event_id: str, seq: Id) -> Response:
    return jpeg(_snapshot(request, event_id, seq))


@router.get("/thumb/{event_id}/{seq}.jpg")
def thumb(request: Request, event_id: str, seq: Id) -> Response:
    def make() -> bytes | None:
        data = _snapshot(request, event_id, seq)
        return thumbnail(data) if data else None

    return _cached(request, f"thumb/{event_id}/{seq}", make)


@router.get("/face/{event_id}/{seq}/{face}.jpg")
def face(request: Request, event_id: str, seq: Id, face: Id) -> Response:
    def make() -> bytes | None:
        data = _snapshot(request, event_id, seq)
        detail = queries.event(context(request).ops, event_id) if data else None
        shot = next((s for s in detail.snapshots if s.seq == seq), None) if detail else None
        if data is None or shot is None or face >= len(shot.faces):
            return None
        return face_cut(data, shot.faces[face].box)

    return _cached(request, f"face/{event_id}/{seq}/{face}", make)


@router.get("/enrollment/{enrollment_id}")
def enrollment(request: Request, enrollment_id: Id) -> Response:
    crop = queries.enrollment_crop(context(request).ops, enrollment_id)
    if crop is None:
        return jpeg(None)
    return Response(crop.data, media_type=crop.media_type, headers={"Cache-Control": "private, max-age=300"})


@router.get("/visitor/{visitor}.jpg")
def visitor(request: Request, visitor: Id) -> Response:
    try:
        crop = queries.visitor_crop(context(request).ops, visitor)
    except ArchiveOff:
        crop = None
    return jpeg(crop.data if crop else None)
