"""The event archive: events with their faces and snapshots, and the recurring unknown visitors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.types import DecoratedCallable

from homesec.contract import GalleryResult, Verdict, from_iso
from recognizer_node import queries
from recognizer_node.archive_browse import EventDetail, EventFilter, EventPage, VisitorDetail, VisitorSummary
from recognizer_node.http.auth import ADMIN, VIEWER
from recognizer_node.http.context import changed, context, documented, endpoint, found, gallery_command

router = APIRouter(prefix="/api")
ERRORS = documented(401, 403, 404, 422, 429)
JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "A JPEG."},
    **ERRORS,
}
Id = Annotated[int, Path(ge=0, le=2**63 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Skip this many.")]
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many.")]
Time = Annotated[str | None, Query(description="ISO-8601 with an offset, e.g. 2026-12-01T08:00:00Z.")]
Face = Annotated[int, Path(ge=0, le=2**31, description="Its index in the snapshot's `faces`.")]


# The archive's three kinds of route: a viewer's read (JSON or a JPEG) and an admin's change.
def _read(path: str, tag: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    return endpoint(router, "GET", path, summary, [VIEWER], responses=ERRORS, tags=[tag])


def _jpeg(path: str, tag: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    return endpoint(
        router, "GET", path, summary, [VIEWER], responses=JPEG, response_class=Response, tags=[tag]
    )


def _change(path: str, tag: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    return endpoint(router, "POST", path, summary, [ADMIN], responses=ERRORS, tags=[tag])


@_read("/events", "events", "Events")
def events(
    request: Request,
    camera: str | None = None,
    verdict: Annotated[Verdict | None, Query(description="Events with a snapshot of this verdict.")] = None,
    label: Annotated[
        str | None, Query(description="Events where this person was named: their label or display name.")
    ] = None,
    visitor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    since: Time = None,
    until: Time = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> EventPage:
    """Archived events, newest first, a page at a time (`next_offset` asks for the next)."""
    which = EventFilter(
        camera=camera,
        verdict=verdict,
        label=label,
        visitor=visitor,
        since=from_iso(since) if since else None,
        until=from_iso(until) if until else None,
        offset=offset,
        limit=limit,
    )
    return queries.events(context(request).ops, which)


@_read("/events/{event_id}", "events", "An event")
def event(request: Request, event_id: str) -> EventDetail:
    """The event's snapshots, each with its faces."""
    return found(queries.event(context(request).ops, event_id), f"no archived event {event_id!r}")


def _snapshot(request: Request, event_id: str, seq: int, annotated: bool) -> Response:
    jpeg = queries.snapshot(context(request).ops, event_id, seq, annotated=annotated)
    return Response(found(jpeg, f"no archived snapshot {seq} of event {event_id!r}"), media_type="image/jpeg")


@_jpeg("/events/{event_id}/snapshots/{seq}", "events", "A snapshot as taken")
def snapshot(request: Request, event_id: str, seq: Id) -> Response:
    return _snapshot(request, event_id, seq, annotated=False)


@_jpeg("/events/{event_id}/snapshots/{seq}/annotated", "events", "A snapshot with its faces boxed")
def annotated_snapshot(request: Request, event_id: str, seq: Id) -> Response:
    return _snapshot(request, event_id, seq, annotated=True)


@_change(
    "/events/{event_id}/snapshots/{seq}/faces/{face}/not", "events", "Not this person (an archived face)"
)
def not_label(
    request: Request,
    event_id: str,
    seq: Id,
    face: Face,
    label: Annotated[
        str | None, Body(embed=True, description="The wrong name; default: the name it was given.")
    ] = None,
) -> GalleryResult:
    """The archived face was wrongly named: keep it as a negative of that label, so it is not named so
    again. A refusal (no such face, it was not named, no such label) is `ok: false` with the reason."""
    return gallery_command(request, op="not_label", event_id=event_id, seq=seq, face=face, label=label)


@_change("/events/{event_id}/snapshots/{seq}/faces/{face}/enroll", "events", "Enroll an archived face")
def enroll_face(
    request: Request,
    event_id: str,
    seq: Id,
    face: Face,
    label: Annotated[str, Body(embed=True, description="The person's name.")],
    force: Annotated[
        bool, Body(embed=True, description="Enroll it even when it already matches another label.")
    ] = False,
) -> GalleryResult:
    """Enroll the archived face from the clean snapshot (never from a photo with boxes drawn on it),
    through the same quality gates and identity guard as training. A refusal is `ok: false` with the
    reason."""
    fields = {"event_id": event_id, "seq": seq, "face": face, "label": label, "force": force}
    return gallery_command(request, op="enroll_face", **fields)


@_read("/visitors", "visitors", "Visitors")
def visitors(request: Request, offset: Offset = 0, limit: Limit = 50) -> list[VisitorSummary]:
    """The recurring unknown faces, the most recently seen first."""
    return queries.visitors(context(request).ops, offset, limit)


@_read("/visitors/{visitor}", "visitors", "A visitor")
def visitor(request: Request, visitor: Id) -> VisitorDetail:
    return found(queries.visitor(context(request).ops, visitor), f"no visitor {visitor}")


def _crop(request: Request, visitor: int, face: int | None) -> Response:
    missing = f"no face of visitor {visitor}" if face is None else f"no face {face} of visitor {visitor}"
    crop = found(queries.visitor_crop(context(request).ops, visitor, face), missing)
    return Response(crop.data, media_type=crop.media_type)


@_jpeg("/visitors/{visitor}/crop", "visitors", "A visitor's best face")
def visitor_crop(request: Request, visitor: Id) -> Response:
    return _crop(request, visitor, None)


@_jpeg("/visitors/{visitor}/faces/{face}/crop", "visitors", "One face of a visitor")
def visitor_face_crop(request: Request, visitor: Id, face: Id) -> Response:
    return _crop(request, visitor, face)


@_change("/visitors/{visitor}/name", "visitors", "Name a visitor")
def name_visitor(
    request: Request, visitor: Id, label: Annotated[str, Body(embed=True, description="Who it is.")]
) -> GalleryResult:
    """Enroll the visitor's archived faces (its best 20) as `label`: named from now on."""
    return changed(request, f"no visitor {visitor}", op="name_visitor", visitor=visitor, label=label)


@_change("/visitors/{visitor}/dismiss", "visitors", "Dismiss a visitor")
def dismiss_visitor(request: Request, visitor: Id) -> GalleryResult:
    """Forget the visitor: its faces stay in their events, no longer grouped, and it leaves the list.
    If that person comes back, they are a new visitor."""
    return changed(request, f"no visitor {visitor}", op="dismiss_visitor", visitor=visitor)
