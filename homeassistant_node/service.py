"""The bridge on the bus: reads the nodes' state, publishes the discovery configs and derived state.

It sends no command and handles none: Home Assistant's switches and buttons publish on the nodes' own
command topics (as the `homeassistant` user), so they go through the same operations as the bot and
the command line.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from homeassistant_node.entities import Catalog
from homeassistant_node.house import House, Publication
from homeassistant_node.settings import HomeAssistantSettings
from homesec.bus import Bus, Message
from homesec.contract import Availability, GallerySummary, RecognitionResult, parse

log = logging.getLogger(__name__)


def homesec_version() -> str:
    try:
        return version("homesec")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


class HomeAssistantBridge:
    def __init__(self, settings: HomeAssistantSettings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self.topics = dataclasses.replace(bus.topics, discovery_prefix=settings.discovery_prefix)
        catalog = Catalog(self.topics, homesec_version(), bus.node, settings.device_name, settings.photos)
        self.house = House(catalog, enabled=settings.enabled)
        self._lock = threading.Lock()  # handlers run on the bus worker, the connect hook on paho's thread
        self._outbox: deque[Publication] = deque()  # in the order decided, whichever thread decided
        self._flushing = threading.Lock()

    def start(self) -> None:
        t = self.topics
        self.bus.subscribe(t.all_available, self._on_available)
        self.bus.subscribe(t.gallery, self._on_gallery)
        self.bus.subscribe(t.all_results, self._on_result)
        self.bus.subscribe(t.ha_all_discovery, self._on_own_config)
        self.bus.subscribe(t.ha_status, self._on_ha_status)
        self.bus.on_connected(self._announce)
        if not self.settings.enabled:
            log.info("Home Assistant discovery is off: removing what was announced before")

    def stop(self) -> None:
        """Nothing to undo: the configs stay (retained), and the bridge's will marks its entities."""

    # -- handlers
    def _announce(self) -> None:
        self._send(self.house.everything)

    def _on_ha_status(self, msg: Message) -> None:
        # Home Assistant's birth message: it may have lost the configs (a restart without a retained
        # copy, a new broker), so everything is sent again. A retained `online` is the connect's job.
        if msg.payload.strip() == Availability.ONLINE.value.encode() and not msg.retain:
            log.info("Home Assistant is online: announcing everything again")
            self._send(self.house.everything)

    def _on_available(self, msg: Message) -> None:
        node = self.topics.node_from_available(msg.topic)
        word = msg.payload.decode(errors="replace").strip()
        self._send(lambda: self.house.on_available(node, word))

    def _on_gallery(self, msg: Message) -> None:
        summary = parse(GallerySummary, msg.payload)
        self._send(lambda: self.house.on_gallery(summary))

    def _on_result(self, msg: Message) -> None:
        result = parse(RecognitionResult, msg.payload)
        self._send(lambda: self.house.on_result(result))

    def _on_own_config(self, msg: Message) -> None:
        self._send(lambda: self.house.on_own_config(msg.topic, msg.payload))

    def _send(self, work: Callable[[], list[Publication]]) -> None:
        with self._lock:
            self._outbox.extend(work())
        self._flush()

    def _flush(self) -> None:
        """Publish the outbox in order. One thread at a time, and no thread waits for another: one that
        finds a flush under way leaves its publications to it (the flusher looks again before leaving)."""
        while self._outbox:
            if not self._flushing.acquire(blocking=False):
                return
            try:
                while self._outbox:
                    p = self._outbox.popleft()
                    self.bus.publish(p.topic, p.payload, retain=p.retain)
            finally:
                self._flushing.release()
