"""The one way to ask and to answer over the bus.

A request carries its id as MQTT v5 CorrelationData and, when the requester wants a private answer, a
ResponseTopic under `<prefix>/reply/`. `serve` answers every request it receives (a refusal when it cannot
be handled); `Requester` sends requests and matches the answers by CorrelationData.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from homesec.bus import Bus, Message, Unsubscribe, is_transient
from homesec.contract import ContractError, Payload, parse

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Answer = TypeVar("Answer", bound=Payload)


class NoAnswer(TimeoutError):
    """No answer within the timeout: the answering node is down, or never got the request."""


class AnsweredFailure(RuntimeError):
    """A request failed for a cause that would pass (a full disk) and was answered with a refusal: the
    bus reports it, and does not hand the request to its handler again."""


MAX_REASON = 1000  # characters of a refusal's reason: an exception's text can be as long as its input


def request_id_of(msg: Message) -> str | None:
    """The requester's id from the MQTT v5 CorrelationData, None when it sent none."""
    if msg.correlation_data is None:
        return None
    return msg.correlation_data.decode("utf-8", errors="replace")


def send_answer(bus: Bus, request: Message, answer: Payload, publish_to: str | None) -> None:
    """`answer` on `publish_to` for everyone (if given), and on the request's response topic.

    Only response topics under `<prefix>/reply/` are honoured: the requester chooses the topic, and the
    answering node may also write its own state topics, which a request must not be able to overwrite.
    """
    if publish_to is not None:
        bus.publish(publish_to, answer)
    reply = request.response_topic
    if not reply:
        return
    if not reply.startswith(bus.topics.reply_root) or any(c in reply for c in "+#"):
        bus.report_error(
            "bad_response_topic",
            f"response topic {reply!r} is not under {bus.topics.reply_root}",
            request.topic,
        )
        return
    bus.publish(reply, answer, correlation_data=request.correlation_data)


def serve(
    bus: Bus,
    topic_filter: str,
    decode: Callable[[Message], Req],
    handle: Callable[[Req], Answer],
    *,
    refuse: Callable[[str | None, str], Answer],
    publish_to: str | Callable[[Answer], str] | None = None,
) -> Unsubscribe:
    """Answer every request on `topic_filter`: decode, handle, reply; a refusal when either fails.

    The refusal gets the decoded request's `request_id` when decoding got that far, else the
    CorrelationData. The failure is then re-raised, so the bus reports it on the node's error topic
    (`bad_payload` for a ContractError, `handler_failed` for anything else; a transient cause such as a
    full disk as `AnsweredFailure`, since the request has had its answer and must not be retried).
    """

    def topic_for(answer: Answer) -> str | None:
        return publish_to(answer) if callable(publish_to) else publish_to

    def on_request(msg: Message) -> None:
        request_id = request_id_of(msg)
        try:
            request = decode(msg)
            request_id = getattr(request, "request_id", None) or request_id
            answer = handle(request)
            send_answer(bus, msg, answer, topic_for(answer))
        except Exception as exc:
            if isinstance(exc, ContractError):
                reason = str(exc)
            else:
                reason = f"internal error: {type(exc).__name__}: {exc}"
            refusal = refuse(request_id, reason[:MAX_REASON])
            send_answer(bus, msg, refusal, topic_for(refusal))
            if is_transient(exc):  # answered: a retry would do the work again behind the requester's back
                raise AnsweredFailure(reason) from exc
            raise

    return bus.subscribe(topic_filter, on_request)


@dataclass
class _Pending:
    deliver: Callable[[Message], None]
    timer: threading.Timer | None = None


@dataclass
class _Slot:
    """Where a blocking request waits for its answer."""

    done: threading.Event = field(default_factory=threading.Event)
    msg: Message | None = None

    def deliver(self, msg: Message) -> None:
        self.msg = msg
        self.done.set()


class Requester:
    """Sends requests with `reply_topic` as their response topic and matches answers by CorrelationData.

    `request` blocks its caller, so never call it from a bus handler: the answer would wait behind it on
    the same worker thread.
    """

    def __init__(self, bus: Bus, reply_topic: str) -> None:
        self.bus = bus
        self.reply_topic = reply_topic
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._unsubscribe = bus.subscribe(reply_topic, self._on_reply)

    def request(
        self,
        topic: str,
        payload: Payload | bytes,
        answer_model: type[Answer],
        request_id: str,
        timeout: float = 30.0,
        user_properties: dict[str, str] | None = None,
    ) -> Answer:
        """Publish and wait for the answer carrying `request_id`; NoAnswer after `timeout` seconds."""
        slot = _Slot()
        self._send(topic, payload, request_id, _Pending(slot.deliver), user_properties)
        if not slot.done.wait(timeout):
            self._take(request_id)
            raise NoAnswer(f"no answer within {timeout:g}s: is the node running? (`homesec status`)")
        assert slot.msg is not None
        return parse(answer_model, slot.msg.payload)

    def request_async(
        self,
        topic: str,
        payload: Payload | bytes,
        answer_model: type[Answer],
        *,
        request_id: str,
        timeout: float,
        on_answer: Callable[[Answer], None],
        on_timeout: Callable[[], None],
        user_properties: dict[str, str] | None = None,
    ) -> None:
        """Publish and return. Exactly one of the callbacks runs: `on_answer` on the bus worker thread,
        or `on_timeout` on a timer thread after `timeout` seconds."""

        def deliver(msg: Message) -> None:
            on_answer(parse(answer_model, msg.payload))  # a ContractError is reported by the bus

        def expire() -> None:
            if self._take(request_id) is not None:
                on_timeout()

        pending = _Pending(deliver, threading.Timer(timeout, expire))
        assert pending.timer is not None
        pending.timer.daemon = True
        self._send(topic, payload, request_id, pending, user_properties)
        pending.timer.start()

    def close(self) -> None:
        """Stop listening; pending requests get neither callback."""
        self._unsubscribe()
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for p in pending:
            if p.timer is not None:
                p.timer.cancel()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def _send(
        self,
        topic: str,
        payload: Payload | bytes,
        request_id: str,
        pending: _Pending,
        user_properties: dict[str, str] | None,
    ) -> None:
        with self._lock:
            self._pending[request_id] = pending  # before publishing: the answer can be quick
        try:
            self.bus.publish(
                topic,
                payload,
                response_topic=self.reply_topic,
                correlation_data=request_id.encode(),
                user_properties=user_properties,
            )
        except BaseException:
            self._take(request_id)
            raise

    def _take(self, request_id: str) -> _Pending | None:
        with self._lock:
            return self._pending.pop(request_id, None)

    def _on_reply(self, msg: Message) -> None:
        request_id = request_id_of(msg)
        pending = self._take(request_id) if request_id is not None else None
        if pending is None:
            log.debug("answer for no pending request on %s (late, or not ours)", msg.topic)
            return
        if pending.timer is not None:
            pending.timer.cancel()
        pending.deliver(msg)
