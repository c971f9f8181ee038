"""Pure pieces of the delivery policy, each with an injected clock: grouping, rate limit, backoff."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from homesec.contract import Alert, Verdict, new_id

Clock = Callable[[], float]

# An unknown face is worth a fresh alert even inside a no-face group: it is the photo people want;
# so is a face too small to judge after motion alone (someone came into view).
VERDICT_RANK = {Verdict.KNOWN: 0, Verdict.NO_FACE: 1, Verdict.TOO_SMALL: 2, Verdict.UNKNOWN: 3}


def visitors_of(alert: Alert) -> frozenset[str]:
    """The unknown-visitor ids in an alert: the cooldown groups photos per visitor."""
    return frozenset(f.visitor for f in alert.faces if f.visitor and f.label is None)


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half the step is fixed, half random.

    attempt 1 -> [low/2, low], 2 -> [low, 2 low], ... capped at `high`.
    """
    step = min(high, low * 2 ** max(0, attempt - 1))
    return step / 2 + (rng or random).random() * step / 2


class RateLimiter:
    """At most one message per `interval` seconds per chat (Telegram: about 1/s per chat).

    `reserve(chat)` books the next free slot and returns how long to wait for it, so concurrent
    senders (alerts, bot replies) queue up instead of bursting.
    """

    def __init__(self, interval: float, clock: Clock) -> None:
        self.interval = interval
        self._clock = clock
        self._next: dict[int, float] = {}
        self._lock = threading.Lock()

    def reserve(self, chat: int) -> float:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(chat, now))
            self._next[chat] = slot + self.interval
            return slot - now

    def wait_turn(self, chat: int, stop: threading.Event) -> None:
        """Book the next slot for `chat` and wait for it; returns early once `stop` is set."""
        if (delay := self.reserve(chat)) > 0:
            stop.wait(delay)

    def push_back(self, chat: int, seconds: float) -> None:
        """Telegram said 'retry after N': nothing goes to this chat before then."""
        with self._lock:
            self._next[chat] = max(self._next.get(chat, 0.0), self._clock() + seconds)


@dataclass
class Group:
    """Photos folded into one alert: one visitor at one camera."""

    id: str
    camera: str
    started: float
    rank: int
    count: int = 1
    event_ids: set[str] = field(default_factory=set)
    visitors: set[str] = field(default_factory=set)  # unknown-visitor ids seen in this group


@dataclass(frozen=True)
class Admission:
    send: bool  # False: a follow-up photo, counted into `group`
    group: str
    count: int


class Grouper:
    """Per camera: the first alert opens a group; later photos of the same event, or within
    `cooldown` seconds of the group's first photo, are counted into it instead of sent, unless
    they are better (an unknown face after a no-face photo) or show a visitor the group has not
    seen (a second stranger within the cooldown is news; the same one again is not)."""

    def __init__(self, cooldown: float, clock: Clock, keep: int = 256) -> None:
        self.cooldown = cooldown
        self._clock = clock
        self._keep = keep
        self._current: dict[str, Group] = {}
        self._groups: OrderedDict[str, Group] = OrderedDict()
        self._lock = threading.Lock()

    def admit(
        self, camera: str, event_id: str, verdict: Verdict, visitors: frozenset[str] = frozenset()
    ) -> Admission:
        with self._lock:
            now = self._clock()
            rank = VERDICT_RANK[verdict]
            g = self._current.get(camera)
            if g and rank <= g.rank and (event_id in g.event_ids or self._same_visit(g, now, visitors)):
                g.count += 1
                g.event_ids.add(event_id)
                g.visitors |= visitors
                return Admission(False, g.id, g.count)
            g = Group(new_id(), camera, now, rank, event_ids={event_id}, visitors=set(visitors))
            self._current[camera] = g
            self._groups[g.id] = g
            while len(self._groups) > self._keep:
                self._groups.popitem(last=False)
            return Admission(True, g.id, 1)

    def _same_visit(self, g: Group, now: float, visitors: frozenset[str]) -> bool:
        if now - g.started >= self.cooldown:
            return False
        # Without visitor ids on either side we cannot tell two strangers apart: one visit.
        return not visitors or not g.visitors or bool(visitors & g.visitors)

    def count(self, group: str) -> int:
        with self._lock:
            g = self._groups.get(group)
            return g.count if g else 1


@dataclass(frozen=True)
class Refusal:
    answer: bool  # False: stay silent
    ignored: int  # messages from this sender left unanswered since its last refusal


class Strangers:
    """Chats the bot does not obey get one refusal per `interval` seconds, then silence: a flood of
    messages from one chat costs one reply an hour. Remembers the last `keep` senders."""

    def __init__(self, interval: float, clock: Clock, keep: int = 1000) -> None:
        self.interval = interval
        self._clock = clock
        self._keep = keep
        self._last: OrderedDict[object, tuple[float, int]] = OrderedDict()  # sender -> (refused at, ignored)
        self._lock = threading.Lock()

    def refuse(self, sender: object) -> Refusal:
        with self._lock:
            now = self._clock()
            refused_at, ignored = self._last.pop(sender, (None, 0))
            if refused_at is not None and now - refused_at < self.interval:
                self._last[sender] = (refused_at, ignored + 1)
                return Refusal(False, ignored + 1)
            self._last[sender] = (now, 0)
            while len(self._last) > self._keep:
                self._last.popitem(last=False)
            return Refusal(True, ignored)
