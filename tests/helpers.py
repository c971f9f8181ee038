"""Shared test helpers: waiting on a condition, and a real MqttBus over an in-memory broker."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Unpack

from homesec.bus import (
    Bus,
    Message,
    MqttBus,
    PayloadLike,
    PublishOptions,
    Unsubscribe,
    encode,
    error_report,
    publish_properties,
)
from homesec.contract import ErrorReport, RecognitionResult, SnapshotMeta, Topics, Verdict, parse_meta
from homesec.fakemqtt import FakeBroker, FakeClient
from homesec.settings import MqttSettings

# Slow machines stretch every wait: scripts/arm64-check.sh runs the tests under emulation (10-20x slower).
TIME_SCALE = float(os.environ.get("HOMESEC_TEST_TIME_SCALE", "1"))
IDLE_TIMEOUT_S = 10.0 * TIME_SCALE


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.01) -> None:
    """Poll `predicate` until it is true; AssertionError after `timeout` seconds (times TIME_SCALE)."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


class LocalBus(MqttBus):
    """The real MqttBus, connected at once to a FakeBroker of its own (or a shared one).

    What the code under test sees is the production bus: handlers on the worker thread, acks after them,
    retained messages replayed to late subscribers. For every other thread it adds waiting: `inject`,
    `publish`, `start` and the `online` switch return only when the bus is idle (every message that
    reached it handled), so assertions can follow them directly, as when the old fake ran the handlers
    on the caller's thread. `drain()` waits the same way.
    """

    _open: ClassVar[list[LocalBus]] = []  # closed after each test by the autouse fixture in conftest

    def __init__(
        self,
        node: str = "test/local",
        topics: Topics | None = None,
        max_payload_bytes: int | None = None,
        broker: FakeBroker | None = None,
        retry_s: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self.broker = broker or FakeBroker()
        self.max_payload_bytes = max_payload_bytes
        settings = MqttSettings(prefix=(topics or Topics()).prefix)
        if max_payload_bytes is not None:
            settings = settings.model_copy(update={"max_payload_mb": max_payload_bytes / (1024 * 1024)})
        super().__init__(settings, node=node, client_factory=self.broker.client, retry_s=retry_s)
        self.errors: list[ErrorReport] = []
        LocalBus._open.append(self)
        # Connected from the start, so that tests need not start it; announced (and the on-connect hooks
        # run) only by `start()`, as the services' tests expect.
        self._announce = False
        super().start()
        assert self.wait_connected(IDLE_TIMEOUT_S), "the fake broker did not accept the connection"
        self._announce = True
        self._settle()

    @property
    def fake(self) -> FakeClient:
        assert isinstance(self._client, FakeClient)
        return self._client

    # -- what tests read
    @property
    def published(self) -> list[Message]:
        """Everything this bus published, in the order the broker received it (errors included)."""
        return self.fake.sent

    @property
    def retained(self) -> dict[str, Message]:
        return {topic: m.as_message() for topic, m in self.broker.retained.items()}

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.published if m.topic == topic]

    def json(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads(topic)]

    # -- what tests do
    def inject(self, topic: str, payload: PayloadLike, **kw: Any) -> None:
        """Deliver a message to this bus as if another client had published it."""
        data, content_type = encode(payload)
        retain = bool(kw.pop("retain", False))
        props = publish_properties(content_type=content_type, **kw)
        self.broker.publish(topic, data, retain=retain, properties=props)
        self._settle()

    @property
    def online(self) -> bool:
        return self.broker.running

    @online.setter
    def online(self, value: bool) -> None:
        """Switch the broker on or off; returns once the bus noticed."""
        if value:
            self.broker.start()
            assert self.wait_connected(IDLE_TIMEOUT_S), "the bus did not reconnect"
        else:
            self.broker.stop()
            wait_until(lambda: not self.connected, IDLE_TIMEOUT_S)
        self._settle()

    def drain(self, timeout: float = IDLE_TIMEOUT_S) -> None:
        """Wait until every message that reached this bus has been handled (and what that caused)."""
        deadline = time.monotonic() + timeout
        while not self._idle():
            # The network thread hands messages to the worker; the worker's handlers may publish more.
            for q in (self.fake.events, self._inbox):
                if not _wait_done(q, deadline - time.monotonic()):
                    raise AssertionError(f"{self.node}: the bus is still busy after {timeout}s")

    # -- the Bus interface, waiting for the test thread
    def start(self) -> None:
        """Connected since construction: announce and run the on-connect hooks, as after a connect."""
        if self.connected:
            self._become_ready(self._client)
        self._settle()

    def publish(self, topic: str, payload: PayloadLike, **options: Unpack[PublishOptions]) -> None:
        super().publish(topic, payload, **options)
        self._settle()

    def publish_confirmed(
        self, topic: str, payload: PayloadLike, *, timeout: float = 10.0, **options: Unpack[PublishOptions]
    ) -> bool:
        ok = super().publish_confirmed(topic, payload, timeout=timeout, **options)
        self._settle()
        return ok

    def report_error(self, error: str, detail: str, topic: str) -> None:
        super().report_error(error, detail, topic)
        self.errors.append(error_report(self.node, error, detail, topic))

    def close(self) -> None:
        """Stop the threads without the goodbye (for the fixture that cleans up after each test)."""
        self._closing.set()
        self._retries.cancel()
        if self._worker is not None and self._worker.is_alive():
            self._inbox.put(None)
        self.fake.loop_stop()

    # -- helpers
    def _idle(self) -> bool:
        return self.fake.events.unfinished_tasks == 0 and self._inbox.unfinished_tasks == 0

    def _settle(self) -> None:
        """Drain, unless called from the bus's own threads (a handler must not wait for itself)."""
        worker, network = self._worker, self.fake.network_thread
        if worker is None or not worker.is_alive():
            return
        if threading.current_thread() not in (worker, network):
            self.drain()


def _wait_done(q: queue.Queue[Any], timeout: float) -> bool:
    """Wait until every item put on `q` was marked done."""
    with q.all_tasks_done:
        return q.all_tasks_done.wait_for(lambda: q.unfinished_tasks == 0, max(timeout, 0))


class FakeClock:
    """A monotonic clock that moves only when told: pass it where a service takes `clock`, and its
    `sleep` where it takes one, so that waiting costs no wall time and timings are exact."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def answer_snapshots(bus: Bus, topic_filter: str = "+") -> Unsubscribe:
    """A stand-in recognizer on `bus`: every snapshot of the cameras `topic_filter` names is answered
    with its result (no face), as the camera waits for before it lets the snapshot go."""
    topics = bus.topics

    def answer(msg: Message) -> None:
        meta = parse_meta(SnapshotMeta, msg.user_properties)
        result = RecognitionResult(
            camera=meta.camera,
            event_id=meta.event_id,
            seq=meta.seq,
            verdict=Verdict.NO_FACE,
            faces=[],
            timings_ms={},
            model="stand-in",
            node="test/stand-in",
        )
        bus.publish(topics.result(meta.camera), result)

    return bus.subscribe(topics.snapshot(topic_filter), answer)
