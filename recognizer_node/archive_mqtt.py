"""Reads of the event archive over MQTT (`homesec visits`, `homesec visitors`): the same queries the HTTP
API's `/api/events` and `/api/visitors` serve, answered on the requester's reply topic."""

from __future__ import annotations

from homesec.bus import Bus, Message, Unsubscribe
from homesec.contract import ArchiveAnswer, ArchiveQuery, new_id, parse
from homesec.requests import request_id_of, serve
from recognizer_node import queries
from recognizer_node.archive_browse import EventFilter
from recognizer_node.operations import RecognizerOperations


def serve_archive_queries(bus: Bus, ops: RecognizerOperations) -> Unsubscribe:
    return serve(
        bus,
        bus.topics.archive_cmd,
        _decode,
        lambda query: answer_archive_query(ops, query),
        refuse=_refused,
    )


def answer_archive_query(ops: RecognizerOperations, q: ArchiveQuery) -> ArchiveAnswer:
    """The events or visitors `q` asks for; a refusal with the reason when there is no archive."""
    try:
        if q.what == "visitors":
            found = queries.visitors(ops, q.offset, q.limit)
            return ArchiveAnswer(
                request_id=q.request_id, ok=True, visitors=[v.model_dump(mode="json") for v in found]
            )
        which = EventFilter(
            camera=q.camera, verdict=q.verdict, label=q.label, visitor=q.visitor,
            since=q.since, until=q.until, offset=q.offset, limit=q.limit,
        )  # fmt: skip
        page = queries.events(ops, which)
    except queries.ArchiveOff as exc:
        return _refused(q.request_id, str(exc))
    return ArchiveAnswer(
        request_id=q.request_id,
        ok=True,
        events=[e.model_dump(mode="json") for e in page.events],
        total=page.total,
        next_offset=page.next_offset,
    )


def _decode(msg: Message) -> ArchiveQuery:
    query = parse(ArchiveQuery, msg.payload)
    request_id = request_id_of(msg)
    return query.model_copy(update={"request_id": request_id}) if request_id else query


def _refused(request_id: str | None, reason: str) -> ArchiveAnswer:
    return ArchiveAnswer(request_id=request_id or new_id(), ok=False, reason=reason)
