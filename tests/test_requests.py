"""serve() and Requester: every request answered, on the right topics, matched by CorrelationData."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from homesec.bus import Message
from homesec.config import Config
from homesec.contract import ContractError, Payload, parse
from homesec.remote import RemoteClient
from homesec.requests import NoAnswer, Requester, request_id_of, serve
from tests.helpers import LocalBus

ASK = "homesec/test/ask"
RESULT = "homesec/test/result"


class Ping(Payload):
    request_id: str
    n: int


class Pong(Payload):
    request_id: str | None
    ok: bool
    n: int = 0
    reason: str | None = None


def decode(msg: Message) -> Ping:
    return parse(Ping, msg.payload)


def double(req: Ping) -> Pong:
    if req.n < 0:
        raise ContractError("n must not be negative")
    if req.n == 13:
        raise RuntimeError("unlucky")
    return Pong(request_id=req.request_id, ok=True, n=2 * req.n)


def refuse(request_id: str | None, reason: str) -> Pong:
    return Pong(request_id=request_id, ok=False, reason=reason)


@pytest.fixture
def bus() -> LocalBus:
    bus = LocalBus("test/server")
    serve(bus, ASK, decode, double, refuse=refuse, publish_to=RESULT)
    return bus


def answers(bus: LocalBus, topic: str) -> list[Pong]:
    return [parse(Pong, p) for p in bus.payloads(topic)]


def ask_async(
    asker: Requester,
    request_id: str,
    n: int,
    timeout: float,
    on_answer: Callable[[Pong], None],
    on_timeout: Callable[[], None],
) -> None:
    ping = Ping(request_id=request_id, n=n)
    asker.request_async(
        ASK, ping, Pong, request_id=request_id, timeout=timeout, on_answer=on_answer, on_timeout=on_timeout
    )


def test_request_id_is_the_correlation_data() -> None:
    assert request_id_of(Message("t", b"", correlation_data=b"r-1")) == "r-1"
    assert request_id_of(Message("t", b"", user_properties={"request_id": "x"})) is None


def test_an_answer_goes_to_the_result_topic_and_the_response_topic(bus: LocalBus) -> None:
    reply = bus.topics.reply("admin", "c1")
    bus.inject(ASK, Ping(request_id="r1", n=21), response_topic=reply, correlation_data=b"r1")
    assert [a.n for a in answers(bus, RESULT)] == [42]
    [private] = [m for m in bus.published if m.topic == reply]
    assert private.correlation_data == b"r1" and parse(Pong, private.payload).n == 42
    assert bus.errors == []


def test_a_bad_request_is_refused_with_the_reason_and_reported(bus: LocalBus) -> None:
    bus.inject(ASK, b'{"v": 1, "n": "many"}', correlation_data=b"r2")
    bus.inject(ASK, Ping(request_id="r3", n=-1))
    bad_json, negative = answers(bus, RESULT)
    assert bad_json.ok is False and bad_json.request_id == "r2" and "n" in (bad_json.reason or "")
    assert negative.ok is False and negative.request_id == "r3"  # the decoded request's own id
    assert negative.reason == "n must not be negative"
    assert [e.error for e in bus.errors] == ["bad_payload", "bad_payload"]


def test_a_failing_handler_still_answers(bus: LocalBus) -> None:
    bus.inject(ASK, Ping(request_id="r4", n=13))
    [answer] = answers(bus, RESULT)
    assert answer.ok is False and answer.reason == "internal error: RuntimeError: unlucky"
    assert [e.error for e in bus.errors] == ["handler_failed"]


def test_a_response_topic_outside_reply_is_not_written(bus: LocalBus) -> None:
    bus.inject(ASK, Ping(request_id="r5", n=1), response_topic=bus.topics.gallery, correlation_data=b"r5")
    assert [m.topic for m in bus.published] == [RESULT, bus.topics.error(bus.node)]
    assert [e.error for e in bus.errors] == ["bad_response_topic"]


def test_the_result_topic_may_depend_on_the_answer() -> None:
    bus = LocalBus("test/server")
    serve(bus, ASK, decode, double, refuse=refuse, publish_to=lambda a: f"{RESULT}/{'ok' if a.ok else 'no'}")
    bus.inject(ASK, Ping(request_id="r6", n=1))
    bus.inject(ASK, Ping(request_id="r7", n=-1))
    assert [a.request_id for a in answers(bus, f"{RESULT}/ok")] == ["r6"]
    assert [a.request_id for a in answers(bus, f"{RESULT}/no")] == ["r7"]


def test_after_unsubscribing_nothing_is_answered() -> None:
    bus = LocalBus("test/server")
    stop = serve(bus, ASK, decode, double, refuse=refuse, publish_to=RESULT)
    stop()
    bus.inject(ASK, Ping(request_id="r8", n=1))
    assert bus.payloads(RESULT) == []


def test_a_requester_gets_its_own_answer(bus: LocalBus) -> None:
    asker = Requester(bus, bus.topics.reply("admin", "me"))
    answer = asker.request(ASK, Ping(request_id="q1", n=5), Pong, request_id="q1", timeout=5)
    assert answer.n == 10 and answer.request_id == "q1"
    assert len(asker) == 0


def test_no_answer_raises_and_forgets_the_request() -> None:
    bus = LocalBus("test/client")  # nobody serves ASK
    asker = Requester(bus, bus.topics.reply("admin", "me"))
    with pytest.raises(NoAnswer):
        asker.request(ASK, Ping(request_id="q2", n=1), Pong, request_id="q2", timeout=0.05)
    assert len(asker) == 0


def test_an_async_answer_arrives_on_the_bus_worker(bus: LocalBus) -> None:
    asker = Requester(bus, bus.topics.reply("notifier", "me"))
    got: list[tuple[Pong, str]] = []
    ask_async(
        asker,
        "q3",
        2,
        5,
        lambda a: got.append((a, threading.current_thread().name)),
        lambda: pytest.fail("late"),
    )
    bus.drain()
    assert [(a.n, thread) for a, thread in got] == [(4, f"bus-{bus.node}")]
    assert len(asker) == 0


def test_an_async_request_times_out_once_and_a_late_answer_is_dropped() -> None:
    bus = LocalBus("test/client")
    reply = bus.topics.reply("notifier", "me")
    asker = Requester(bus, reply)
    timed_out = threading.Event()
    answered: list[Pong] = []
    ask_async(asker, "q4", 1, 0.05, answered.append, timed_out.set)
    assert timed_out.wait(5)
    bus.inject(reply, Pong(request_id="q4", ok=True), correlation_data=b"q4")
    assert answered == [] and len(asker) == 0


def test_answers_for_other_requests_are_ignored() -> None:
    bus = LocalBus("test/client")
    reply = bus.topics.reply("admin", "me")
    asker = Requester(bus, reply)
    answered: list[Pong] = []
    ask_async(asker, "mine", 1, 5, answered.append, lambda: None)
    bus.inject(reply, Pong(request_id="other", ok=True), correlation_data=b"other")
    bus.inject(reply, Pong(request_id="mine", ok=True))  # no CorrelationData: not an answer
    assert answered == [] and len(asker) == 1
    bus.inject(reply, Pong(request_id="mine", ok=True, n=7), correlation_data=b"mine")
    assert [a.n for a in answered] == [7]
    asker.close()


def test_the_cli_client_asks_and_reads_state_and_leaves_no_subscription_behind(tmp_path: Path) -> None:
    node = LocalBus("recognizer/main")
    serve(node, ASK, decode, double, refuse=refuse, publish_to=RESULT)
    node.publish(node.topics.gallery, b'{"labels": {}}', retain=True)
    node.start()  # announces itself: "online", retained
    with RemoteClient(Config(data_dir=tmp_path), client_factory=node.broker.client) as cli:
        answer = cli.request(ASK, Ping(request_id="c1", n=4), Pong, "c1", timeout=5)
        cli.wait_online("recognizer/main", timeout=5)
        state = cli.retained(node.topics.gallery, settle=0.05)
        assert answer.n == 8
        assert [(m.topic, m.payload) for m in state] == [(node.topics.gallery, b'{"labels": {}}')]
        assert node.broker.subscriptions(cli.client_id) == [cli.requester.reply_topic]
