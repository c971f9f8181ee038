"""The pages: Now, Visits (the timeline and one visit), People (and one person), Visitors, Search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from homesec.contract import Role, Verdict, node_name
from recognizer_node import queries
from recognizer_node.archive_browse import EventFilter
from recognizer_node.http.context import context, gallery_command
from recognizer_node.queries import ArchiveOff
from recognizer_node.web import views
from recognizer_node.web.common import page, signed_in
from recognizer_node.web.sessions import Session
from recognizer_node.web.thumbs import image_size

router = APIRouter(include_in_schema=False)
SignedIn = Annotated[Session, Depends(signed_in)]
PAGE_SIZE = 24


def cameras(request: Request) -> list[tuple[str, bool | None, str]]:
    """(camera, enabled or None when it never said, its node's availability) of every camera the house saw."""
    state = context(request).household.state()
    prefix = f"{Role.CAMERA}/"
    ids = set(state.cameras) | {n.removeprefix(prefix) for n in state.nodes if n.startswith(prefix)}
    return [
        (c, state.cameras.get(c), state.nodes.get(node_name(Role.CAMERA, c), "unknown")) for c in sorted(ids)
    ]


@router.get("/")
def now(request: Request, session: SignedIn) -> Response:
    ctx = context(request)
    state = ctx.household.state()
    names = views.Names(ctx.ops)
    last = {}
    for camera, _, _ in cameras(request):
        try:
            latest = queries.events(ctx.ops, EventFilter(camera=camera, limit=1)).events
        except ArchiveOff:
            latest = []
        last[camera] = views.visit_card(ctx.ops, latest[0], names) if latest else None
    return page(
        request, session, "now.html", state=state, cameras=cameras(request), last=last,
        nodes=sorted(state.nodes.items()),
    )  # fmt: skip


@router.get("/visits")
def visits(
    request: Request,
    session: SignedIn,
    camera: str = "",
    person: str = "",
    verdict: str = "",
    day: str = "",
    visitor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Response:
    ctx = context(request)
    names = views.Names(ctx.ops)
    problems = []
    try:
        since, until = views.day_range(day) if day else (None, None)
    except ValueError:
        problems.append(f"{day!r} is not a day (YYYY-MM-DD)")
        since = until = None
    if verdict and verdict not in set(Verdict):  # said, not silently dropped: the list would be everything
        problems.append(f"{verdict!r} is not a verdict ({', '.join(Verdict)})")
    which = EventFilter(
        camera=camera or None,
        verdict=Verdict(verdict) if verdict in set(Verdict) else None,
        label=person or None,
        visitor=visitor,
        since=since,
        until=until,
        offset=offset,
        limit=PAGE_SIZE,
    )
    try:
        found = queries.events(ctx.ops, which)
    except ArchiveOff as exc:
        return page(request, session, "visits.html", off=str(exc), filters={}, names=names)
    cards = [views.visit_card(ctx.ops, e, names) for e in found.events]
    filters = {"camera": camera, "person": person, "verdict": verdict, "day": day}
    known_cameras = sorted(
        {c for c, _, _ in cameras(request)} | {c.camera for c in cards} | ({camera} - {""})
    )
    return page(
        request, session, "visits.html", cards=cards, found=found, filters=filters, visitor=visitor,
        problems=problems, cameras=known_cameras, names=names, verdicts=list(Verdict),
        newer=max(0, offset - PAGE_SIZE) if offset else None, page_size=PAGE_SIZE,
    )  # fmt: skip


@router.get("/visits/{event_id}")
def visit(request: Request, session: SignedIn, event_id: str) -> Response:
    ctx = context(request)
    names = views.Names(ctx.ops)
    try:
        detail = queries.event(ctx.ops, event_id)
    except ArchiveOff as exc:
        return page(request, session, "visit.html", off=str(exc), event_id=event_id)
    if detail is None:
        return page(request, session, "visit.html", status=404, missing=True, event_id=event_id)
    frames = []
    for shot in detail.snapshots:
        jpeg = queries.snapshot(ctx.ops, event_id, shot.seq) if shot.kept else None
        frames.append(views.frame_view(shot, image_size(jpeg) if jpeg else None, names))
    verdict = views.visit_verdict(sorted({s.verdict for s in detail.snapshots}))
    return page(
        request, session, "visit.html", detail=detail, frames=frames, names=names, verdict=verdict,
        people=views.people(detail, names),
    )  # fmt: skip


@router.get("/people")
def people(request: Request, session: SignedIn) -> Response:
    ctx = context(request)
    overview = gallery_command(request, op="list")
    names = views.Names(ctx.ops)
    return page(request, session, "people.html", labels=names.labels, overview=overview, names=names)


@router.get("/people/{label}")
def person(request: Request, session: SignedIn, label: str) -> Response:
    ctx = context(request)
    names = views.Names(ctx.ops)
    info = next((i for i in names.labels if i.label.lower() == label.lower()), None)
    if info is None:
        return page(request, session, "person.html", status=404, missing=label, names=names)
    overview = gallery_command(request, op="list")
    conflicts = [c for c in overview.conflicts if info.label in (c.label, c.other)]
    return page(
        request, session, "person.html", info=info, enrollments=queries.enrollments(ctx.ops, info.label),
        names=names, others=[i for i in names.labels if i.label != info.label], conflicts=conflicts,
        negatives=overview.negatives.get(info.label, 0),
    )  # fmt: skip


@router.get("/visitors")
def visitors(
    request: Request, session: SignedIn, offset: Annotated[int, Query(ge=0, le=2**31)] = 0
) -> Response:
    ctx = context(request)
    names = views.Names(ctx.ops)
    try:
        found = queries.visitors(ctx.ops, offset, PAGE_SIZE + 1)
    except ArchiveOff as exc:
        return page(request, session, "visitors.html", off=str(exc), names=names)
    return page(
        request, session, "visitors.html", visitors=found[:PAGE_SIZE], names=names, offset=offset,
        older=offset + PAGE_SIZE if len(found) > PAGE_SIZE else None,
        newer=max(0, offset - PAGE_SIZE) if offset else None,
    )  # fmt: skip


@router.get("/search")
def search(request: Request, session: SignedIn) -> Response:
    return page(request, session, "search.html", result=None)
