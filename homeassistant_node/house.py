"""What the bridge knows of the house, and what it publishes as it learns: the domain, with no transport.

Each `on_*` method takes one decoded message and returns the publications it calls for; the service
sends them. The bridge keeps no file of its own: the broker's retained messages are its memory (the
nodes' availability, the gallery summary, and the discovery configs it announced earlier, which it reads
back to remove a person forgotten while it was away).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from homeassistant_node.entities import PERSON_OBJECT_PREFIX, Catalog, Entity, person_id
from homesec.contract import (
    Availability,
    GallerySummary,
    LastPerson,
    LastSeen,
    RecognitionResult,
    Role,
    Verdict,
    VisitEvent,
    VisitEventType,
    split_node,
    utc_now,
)

# Events whose names and visitors are kept while their visit may still be decided or revised.
VISITS_KEPT = 200
# A visit decided longer ago than this (results queued for the bridge while it was away) still updates
# the last person and last seen, but fires no event: an automation reacts to a visit now, not to one of
# yesterday.
EVENT_MAX_AGE = timedelta(minutes=2)
EVENT_TYPE: dict[Verdict, VisitEventType] = {
    Verdict.KNOWN: "known_person",
    Verdict.UNKNOWN: "unknown_person",
    Verdict.NO_FACE: "no_face",
    Verdict.TOO_SMALL: "no_face",
}


@dataclass(frozen=True)
class Publication:
    topic: str
    payload: bytes
    retain: bool


def _retained(topic: str, payload: bytes) -> Publication:
    return Publication(topic, payload, True)


@dataclass
class _Visit:
    """The people and visitors seen so far in one motion event (its frames arrive one by one)."""

    best: dict[str, float] = field(default_factory=dict)  # label -> best similarity
    visitors: list[str] = field(default_factory=list)
    seen_announced: set[str] = field(default_factory=set)  # labels whose last seen this event updated
    fired: VisitEventType | None = None  # the last event fired for it
    decided: set[int] = field(default_factory=set)  # revisions (or seqs, without a visit) seen decided


class House:
    """The nodes seen, the people enrolled, the configs on the broker and the visits under way."""

    def __init__(
        self, catalog: Catalog, enabled: bool = True, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.catalog = catalog
        self._clock = clock
        self.topics = catalog.topics
        self.enabled = enabled
        self.nodes: dict[str, str] = {}  # node name -> its last availability word
        self.labels: dict[str, str] | None = None  # enrolled label -> display name; None: not known yet
        self.announced: set[str] = set()  # discovery config topics that hold a config on the broker
        self._recognizers_word: str | None = None
        self._visits: OrderedDict[tuple[str, str], _Visit] = OrderedDict()

    # -- what should exist
    @property
    def cameras(self) -> list[str]:
        return sorted(split_node(n)[1] for n in self.nodes if split_node(n)[0] == Role.CAMERA)

    def entities(self) -> list[Entity]:
        if not self.enabled:
            return []
        out = self.catalog.system_entities()
        for camera in self.cameras:
            out += self.catalog.camera_entities(camera)
        for label, name in sorted((self.labels or {}).items()):
            out.append(self.catalog.person_entity(label, name))
        return out

    def everything(self) -> list[Publication]:
        """Every config and the recognizers' availability: on connect, and when Home Assistant starts."""
        if not self.enabled:
            return []
        configs = [self._config(e) for e in self.entities()]
        if self._recognizers_word is None:  # no availability seen yet (just connected): say nothing
            return configs
        return [*configs, _retained(self.topics.ha_recognizers, self._recognizers_word.encode())]

    def _config(self, entity: Entity) -> Publication:
        return _retained(self.catalog.topic(entity), json.dumps(entity.config).encode())

    # -- nodes
    def on_available(self, node: str, word: str) -> list[Publication]:
        new_camera = node not in self.nodes and split_node(node)[0] == Role.CAMERA
        self.nodes[node] = word
        if not self.enabled:
            return []
        out: list[Publication] = []
        if new_camera:  # a camera keeps its device once seen, whatever its availability says later
            out += [self._config(e) for e in self.catalog.camera_entities(split_node(node)[1])]
        if (now := self._recognizers()) != self._recognizers_word:
            self._recognizers_word = now
            out.append(_retained(self.topics.ha_recognizers, now.encode()))
        return out

    def _recognizers(self) -> str:
        online = any(
            split_node(n)[0] == Role.RECOGNIZER and w == Availability.ONLINE for n, w in self.nodes.items()
        )
        return Availability.ONLINE.value if online else Availability.OFFLINE.value

    # -- people
    def on_gallery(self, summary: GallerySummary) -> list[Publication]:
        before = self.labels or {}
        self.labels = {label: summary.names.get(label) or label for label in summary.labels}
        if not self.enabled:
            return []
        out = [
            self._config(self.catalog.person_entity(label, name))
            for label, name in sorted(self.labels.items())
            if before.get(label) != name
        ]
        return out + self._forget_stale_people()

    def on_own_config(self, topic: str, payload: bytes) -> list[Publication]:
        """A config on the broker under the bridge's node id (its own, announced now or in an earlier run)."""
        if not payload:
            self.announced.discard(topic)
            return []
        self.announced.add(topic)
        if not self.enabled or self.catalog.withdrawn(topic):
            return self._remove(topic)
        return self._forget_stale_people()

    def _forget_stale_people(self) -> list[Publication]:
        if self.labels is None:  # not known yet: never remove on a guess
            return []
        wanted = {self.catalog.topic(self.catalog.person_entity(label, "")) for label in self.labels}
        out: list[Publication] = []
        for topic in sorted(self.announced):
            if _object_id(topic).startswith(PERSON_OBJECT_PREFIX) and topic not in wanted:
                out += self._remove(topic)
        return out

    def _remove(self, topic: str) -> list[Publication]:
        """An empty retained config removes the entity; its person's retained state goes with it."""
        self.announced.discard(topic)
        out = [_retained(topic, b"")]
        object_id = _object_id(topic)
        if object_id.startswith(PERSON_OBJECT_PREFIX) and object_id.endswith("_last_seen"):
            person = object_id[len(PERSON_OBJECT_PREFIX) : -len("_last_seen")]
            out.append(_retained(self.topics.ha_last_seen(person), b""))
        return out

    # -- visits
    def on_result(self, result: RecognitionResult) -> list[Publication]:
        if not self.enabled or result.error is not None:
            return []
        visit = self._visit(result.camera, result.event_id)
        for face in result.faces:
            if face.label is not None:
                visit.best[face.label] = max(visit.best.get(face.label, -1.0), face.similarity or 0.0)
            elif face.visitor is not None and face.visitor not in visit.visitors:
                visit.visitors.append(face.visitor)
        return self._last_seen(result, visit) + self._decision(result, visit)

    def _visit(self, camera: str, event_id: str) -> _Visit:
        key = (camera, event_id)
        visit = self._visits.pop(key, None) or _Visit()
        self._visits[key] = visit  # the newest last: the oldest go first
        while len(self._visits) > VISITS_KEPT:
            self._visits.popitem(last=False)
        return visit

    def _last_seen(self, result: RecognitionResult, visit: _Visit) -> list[Publication]:
        out = []
        for label, similarity in visit.best.items():
            if self.labels is None or label not in self.labels or label in visit.seen_announced:
                continue
            visit.seen_announced.add(label)
            seen = LastSeen(
                ts=result.ts,
                label=label,
                name=self.labels[label],
                camera=result.camera,
                event_id=result.event_id,
                similarity=round(similarity, 3),
            )
            out.append(_retained(self.topics.ha_last_seen(person_id(label)), seen.to_json()))
        return out

    def _decision(self, result: RecognitionResult, visit: _Visit) -> list[Publication]:
        """An event when a visit is decided, and again only when a revision changes its type (a revision
        for a better photo of the same stranger is no second visit); a capture (no visit) decides frame
        by frame, by the same rule. The last person follows every decision."""
        if result.visit is None:
            verdict, frames, revision, key = result.verdict, 1, 0, -1 - result.seq
        elif result.visit.decided:
            state = result.visit
            verdict, frames, revision = state.verdict, state.frames, state.revision or 0
            key = revision
        else:
            return []
        if key in visit.decided:
            return []
        visit.decided.add(key)
        named = sorted(visit.best.items(), key=lambda item: -item[1])
        names = self.labels or {}
        event_type = EVENT_TYPE.get(verdict, "no_face")
        event = VisitEvent(
            event_type=event_type,
            camera=result.camera,
            event_id=result.event_id,
            verdict=verdict,
            labels=[label for label, _ in named],
            names=[names.get(label, label) for label, _ in named],
            similarities=[round(sim, 3) for _, sim in named],
            visitors=list(visit.visitors),
            frames=frames,
            revision=revision,
        )
        out = []
        if event_type != visit.fired and self._clock() - result.ts <= EVENT_MAX_AGE:
            visit.fired = event_type
            out.append(Publication(self.topics.ha_visit(result.camera), event.to_json(), False))
        if verdict in (Verdict.KNOWN, Verdict.UNKNOWN):
            out.append(self._last_person(event))
        return out

    def _last_person(self, event: VisitEvent) -> Publication:
        if event.verdict == Verdict.KNOWN and event.labels:
            label, name, sim = event.labels[0], event.names[0], event.similarities[0]
        else:
            label, name, sim = None, "unknown", None
        person = LastPerson(
            camera=event.camera,
            event_id=event.event_id,
            label=label,
            name=name,
            similarity=sim,
            visitor=None if label else next(iter(event.visitors), None),
        )
        return _retained(self.topics.ha_last_person(event.camera), person.to_json())


def _object_id(topic: str) -> str:
    """`<discovery>/<component>/<node id>/<object id>/config` -> the object id."""
    parts = topic.split("/")
    return parts[-2] if len(parts) >= 2 else ""
