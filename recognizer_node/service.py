"""The recognizer on MQTT: snapshots in, results and alerts out; training, gallery and search requests
answered through `homesec.requests.serve`. The work itself is in `operations.py`.

All handlers run on the bus's single worker thread, one message at a time. A bad message raises
ContractError (the bus reports it as `bad_payload`); every request gets an answer, a refusal with the
reason when it cannot be granted.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from homesec.bus import Bus, Message
from homesec.contract import (
    JPEG_CONTENT_TYPE,
    META_PROPERTY,
    ContractError,
    FaceSearch,
    GalleryResult,
    GallerySummary,
    SearchResult,
    SnapshotMeta,
    Training,
    TrainResult,
    decode_search,
    decode_train,
    meta_property,
    new_id,
    parse_gallery_command,
    parse_meta,
)
from homesec.requests import request_id_of, serve
from recognizer_node.archive_mqtt import serve_archive_queries
from recognizer_node.gallery import Gallery
from recognizer_node.history import History
from recognizer_node.household import Household
from recognizer_node.household_mqtt import watch_household
from recognizer_node.operations import AlertImage, Outcome, RecognizerOperations
from recognizer_node.pipeline import Recognizer
from recognizer_node.settings import RecognizerSettings

log = logging.getLogger(__name__)

VISIT_TICK_S = 0.25  # how often visits whose decision window closed are looked for


class RecognizerService:
    def __init__(
        self,
        settings: RecognizerSettings,
        data_dir: Path,
        bus: Bus,
        recognizer: Recognizer | None = None,
        gallery: Gallery | None = None,
    ) -> None:
        self.bus = bus
        self.topics = t = bus.topics
        self.ops = RecognizerOperations.open(
            settings, data_dir, node=bus.node, recognizer=recognizer, gallery=gallery
        )  # ModelError: the runner exits 2
        self.ops.on_gallery_change(self._publish_summary)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._close_late_visits, name="recognizer-visits", daemon=True)
        bus.subscribe(t.shared_snapshots, self.on_snapshot)
        for train_topic in (t.train, t.train_raw_filter):
            serve(
                bus,
                train_topic,
                self._decode_training,
                self.ops.train,
                refuse=_train_refused,
                publish_to=t.train_result,
            )
        serve(
            bus,
            t.gallery_cmd,
            lambda msg: parse_gallery_command(msg.payload, request_id_of(msg)),
            self.ops.gallery_command,
            refuse=_gallery_refused,
            publish_to=t.gallery_result,
        )
        serve(
            bus,
            t.search_cmd,
            _decode_search,
            self.ops.search,
            refuse=_search_refused,
            publish_to=t.search_result,
        )
        # Retained state, refreshed at every (re)connection from the cached summary: the hook runs on
        # paho's network thread, which must not wait on the gallery while a training holds it.
        bus.on_connected(lambda: self._publish_summary(self.ops.summary))
        serve_archive_queries(bus, self.ops)  # `homesec visits`, `homesec visitors`
        # The rest of the house (nodes, armed, cameras) for the HTTP API's state routes.
        self.household = Household()
        watch_household(bus, self.household)

    @property
    def history(self) -> History | None:
        return self.ops.history

    def start(self) -> None:
        log.info("recognizer ready: %s, gallery %s", self.ops.recognizer.model_name, self.ops.summary.labels)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=5)
        self.ops.close()

    def _close_late_visits(self) -> None:
        """Decide the visits whose window closed before the rest of their burst came: their alert, then
        the results of their frames, held until now."""
        while not self._stop.wait(VISIT_TICK_S):
            try:
                for outcome in self.ops.due():
                    self._publish(outcome)
            except Exception:  # a failed alert must not end the timer: later visits need it
                log.exception("could not publish a visit's alert")

    def on_snapshot(self, msg: Message) -> None:
        camera = self.topics.camera_from_topic(msg.topic)
        try:
            meta = parse_meta(SnapshotMeta, msg.user_properties)
            if meta.camera != camera:
                raise ContractError(
                    f"snapshot meta says camera {meta.camera!r} but the topic says {camera!r}"
                )
            outcome = self.ops.receive(meta, msg.payload)
        except ContractError as exc:  # answered all the same when it can be told apart: see _refused
            self._refused(camera, msg, str(exc))
            raise
        self._publish(outcome)
        if not any(r.seq == meta.seq and r.event_id == meta.event_id for r in outcome.results):
            log.info("%s #%d: held until its visit is decided", camera, meta.seq)

    def _publish(self, outcome: Outcome) -> None:
        """The alert first, then the results: a recognizer killed between the two leaves the snapshots
        without a result, so the camera publishes them again and the repeat (or the visit decided again)
        sends the alert again (recognizer_node/repeats.py, visits.py)."""
        if outcome.alert is not None:
            self._publish_alert(outcome.alert)
        for result in outcome.results:
            self.bus.publish(self.topics.result(result.camera), result)
            log.info(
                "%s #%d: %s %s in %.0f ms",
                result.camera,
                result.seq,
                result.verdict.value,
                [f.label or f.rejected or "unknown" for f in result.faces],
                result.timings_ms.get("total", 0.0),
            )

    def _refused(self, camera: str, msg: Message, reason: str) -> None:
        """Answer a snapshot that cannot be processed with a result saying why, when its event id and seq
        can be read: without an answer the camera would publish it again and again."""
        key = _snapshot_key_of(msg)
        if key is None:
            log.warning(
                "snapshot on %s refused and not answered (no event id and seq): %s", msg.topic, reason
            )
            return
        log.warning("%s/%s #%d refused: %s", camera, *key, reason)
        self.bus.publish(self.topics.result(camera), self.ops.unprocessable(camera, *key, reason))

    def _publish_alert(self, alert: AlertImage) -> None:
        self.bus.publish(
            self.topics.alert(alert.meta.camera),
            alert.jpeg,
            user_properties=meta_property(alert.meta),
            content_type=JPEG_CONTENT_TYPE,
        )

    def _decode_training(self, msg: Message) -> Training:
        """Both forms: JSON on `train`, a JPEG on `train/<label>`."""
        return decode_train(self.topics, msg.topic, msg.payload, msg.user_properties, request_id_of(msg))

    def _publish_summary(self, summary: GallerySummary) -> None:
        self.bus.publish(self.topics.gallery, summary, retain=True)


def _snapshot_key_of(msg: Message) -> tuple[str, int] | None:
    """(event_id, seq) from a snapshot's metadata, however wrong the rest of it is."""
    try:
        raw = json.loads(msg.user_properties.get(META_PROPERTY, ""))
    except (ValueError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    event_id, seq = raw.get("event_id"), raw.get("seq")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 128 or type(seq) is not int:
        return None
    return event_id, seq


def _decode_search(msg: Message) -> FaceSearch:
    return decode_search(msg.payload, msg.user_properties, request_id_of(msg))


def _train_refused(request_id: str | None, reason: str) -> TrainResult:
    return TrainResult(request_id=request_id or new_id(), label=None, ok=False, reason=reason)


def _gallery_refused(request_id: str | None, reason: str) -> GalleryResult:
    return GalleryResult(request_id=request_id or new_id(), op="?", ok=False, reason=reason)


def _search_refused(request_id: str | None, reason: str) -> SearchResult:
    return SearchResult(request_id=request_id or new_id(), ok=False, reason=reason)
