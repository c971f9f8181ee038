"""Request/response over MQTT for the command line: the `admin` user, so the broker's ACLs apply."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from types import TracebackType

from homesec.bus import ClientFactory, Message, MqttBus, paho_client
from homesec.config import Config, mqtt_for_role
from homesec.contract import Availability, Payload, Role, new_id
from homesec.requests import NoAnswer, Requester

__all__ = ["NoAnswer", "RemoteClient"]


class RemoteClient:
    """A short-lived, non-persistent admin connection that sends a command and waits for its answer."""

    def __init__(
        self,
        config: Config,
        role: Role = Role.ADMIN,
        connect_timeout: float = 10.0,
        client_factory: ClientFactory = paho_client,
        hint: str = "",
    ) -> None:
        settings = mqtt_for_role(config, role)
        self.client_id = f"homesec-cli-{new_id()[:8]}"
        self.bus = MqttBus(
            settings,
            node=f"cli/{self.client_id[-8:]}",
            client_id=self.client_id,
            persistent=False,
            announce=False,
            client_factory=client_factory,
        )
        self.topics = self.bus.topics
        self.requester = Requester(self.bus, self.topics.reply(str(role), self.client_id))
        self.request = self.requester.request  # answers come back on our own reply topic
        self._connect_timeout = connect_timeout
        self._settings = settings
        self._hint = hint  # said when the broker cannot be reached

    def __enter__(self) -> RemoteClient:
        self.bus.start()
        if not self.bus.wait_connected(self._connect_timeout):
            self.bus.stop()
            raise ConnectionError(
                f"cannot reach the broker at {self._settings.host}:{self._settings.port} as "
                f"{self._settings.username!r} (is it running? is the password right?){self._hint}"
            )
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.bus.stop()

    def wait_online(self, node: str, timeout: float = 60.0) -> None:
        """Block until `node` (e.g. "recognizer/main") says it is online (retained availability)."""
        online = threading.Event()
        expected = Availability.ONLINE.value.encode()
        unsubscribe = self.bus.subscribe(
            self.topics.available(node), lambda m: online.set() if m.payload == expected else None
        )
        try:
            if not online.wait(timeout):
                raise NoAnswer(f"{node} did not come online within {timeout:.0f}s")
        finally:
            unsubscribe()

    def retained(self, topic_filter: str, settle: float = 0.5) -> list[Message]:
        """The retained messages under `topic_filter` (what a new subscriber gets at once).

        The broker may send them before or after its SUBACK, and has no end marker: collect until the
        SUBACK is in and then `settle` seconds pass without another one.
        """
        got: queue.Queue[Message] = queue.Queue()
        subscription = self.bus.subscribe(topic_filter, got.put)
        out: list[Message] = []
        try:
            if not subscription.wait_ready(self._connect_timeout):
                raise NoAnswer(f"the broker did not confirm the subscription to {topic_filter}")
            while True:
                try:
                    out.append(got.get(timeout=settle))
                except queue.Empty:
                    break
        finally:
            subscription()
        return [m for m in out if m.retain]

    def command(
        self,
        topic: str,
        payload: Payload,
        state_topic: str,
        confirms: Callable[[Message], bool],
        timeout: float,
    ) -> Message:
        """Send a command and wait for the state it changes: a live (not retained) message on `state_topic`
        that `confirms` it. The nodes publish their state again after every command, changed or not."""
        got: queue.Queue[Message] = queue.Queue()
        subscription = self.bus.subscribe(state_topic, lambda m: got.put(m) if not m.retain else None)
        try:
            if not subscription.wait_ready(self._connect_timeout):
                raise NoAnswer(f"the broker did not confirm the subscription to {state_topic}")
            if not self.bus.publish_confirmed(topic, payload):
                raise PermissionError(f"the broker refused {topic}")
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = got.get(timeout=left)
                except queue.Empty:
                    break
                if confirms(msg):
                    return msg
            raise NoAnswer(f"no confirmation on {state_topic} within {timeout:g}s: is the node running?")
        finally:
            subscription()

    def nodes(self) -> dict[str, str]:
        """Every node that ever connected, with its last word (`online`, `offline`, `stopped`)."""
        t = self.topics
        return {t.node_from_available(m.topic): m.payload.decode() for m in self.retained(t.all_available)}
