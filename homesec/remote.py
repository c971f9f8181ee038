"""Request/response over MQTT for the command line: the `admin` user, so the broker's ACLs apply."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from homesec.bus import Message, MqttBus
from homesec.config import Config, mqtt_for_role
from homesec.contract import ContractError, Payload, Role, new_id, parse

R = TypeVar("R", bound=Payload)


class NoAnswer(TimeoutError):
    pass


class RemoteClient:
    """A short-lived, non-persistent admin connection that sends a command and waits for its answer."""

    def __init__(self, config: Config, role: Role = Role.ADMIN, connect_timeout: float = 10.0) -> None:
        settings = mqtt_for_role(config, role)
        self.client_id = f"homesec-cli-{new_id()[:8]}"
        self.bus = MqttBus(
            settings,
            node=f"cli/{self.client_id[-8:]}",
            client_id=self.client_id,
            persistent=False,
            announce=False,
        )
        self.topics = self.bus.topics
        self.reply_topic = self.topics.reply(str(role), self.client_id)
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._connect_timeout = connect_timeout
        self._settings = settings

    def __enter__(self) -> RemoteClient:
        self.bus.subscribe(self.reply_topic, self._inbox.put)
        self.bus.start()
        if not self.bus.wait_connected(self._connect_timeout):
            self.bus.stop()
            raise ConnectionError(
                f"cannot reach the broker at {self._settings.host}:{self._settings.port} as "
                f"{self._settings.username!r} (is it running? is the password right?)"
            )
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.bus.stop()

    def request(
        self,
        topic: str,
        payload: Payload | bytes,
        answer: type[R],
        request_id: str,
        timeout: float = 30.0,
        user_properties: dict[str, str] | None = None,
    ) -> R:
        """Publish and wait for the answer carrying `request_id` (on our reply topic)."""
        self.bus.publish(
            topic,
            payload,
            response_topic=self.reply_topic,
            correlation_data=request_id.encode(),
            user_properties=user_properties,
        )
        return self.wait(answer, lambda r: getattr(r, "request_id", None) == request_id, timeout)

    def wait(self, model: type[R], match: Callable[[R], bool], timeout: float) -> R:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self._inbox.get(timeout=left)
            except queue.Empty:
                break
            try:
                reply = parse(model, msg.payload)
            except ContractError:
                continue
            if match(reply):
                return reply
        raise NoAnswer(f"no answer within {timeout:.0f}s: is the node running? (`homesec status`)")

    def wait_online(self, node: str, timeout: float = 60.0) -> None:
        """Block until `node` (e.g. "recognizer/main") says it is online (retained availability)."""
        online: queue.Queue[Message] = queue.Queue()
        self.bus.subscribe(
            self.topics.available(node), lambda m: online.put(m) if m.payload == b"online" else None
        )
        try:
            online.get(timeout=timeout)
        except queue.Empty:
            raise NoAnswer(f"{node} did not come online within {timeout:.0f}s") from None

    def retained(self, topic_filter: str, settle: float = 0.5) -> list[Message]:
        """The retained messages under `topic_filter` (what a new subscriber gets at once)."""
        got: queue.Queue[Message] = queue.Queue()
        self.bus.subscribe(topic_filter, got.put)
        time.sleep(settle)
        out: list[Message] = []
        while not got.empty():
            out.append(got.get())
        return [m for m in out if m.retain]
