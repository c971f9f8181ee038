"""RecognizerService: snapshots -> results and alerts; training and gallery commands; gallery summary.

All handlers run on the bus's single worker thread, one message at a time. A bad message raises
ContractError (the bus reports it as `bad_payload`); requests that expect an answer (train, gallery)
get a refusal first, so the requester is never left waiting.
"""

from __future__ import annotations

import base64
import binascii
import logging

from homesec.bus import Bus, Message, publish_answer
from homesec.config import Config
from homesec.contract import (
    JPEG_CONTENT_TYPE,
    Alert,
    ContractError,
    GalleryCommand,
    GalleryResult,
    GallerySummary,
    Payload,
    RecognitionResult,
    SnapshotMeta,
    TrainRequest,
    TrainResult,
    Verdict,
    meta_property,
    new_id,
    parse,
    parse_meta,
)
from recognizer_node.gallery import Gallery
from recognizer_node.history import answer_search, name_visitor, open_history
from recognizer_node.pipeline import Recognizer

log = logging.getLogger(__name__)


def request_id_of(msg: Message) -> str:
    """The requester's id: user property `request_id`, else the MQTT v5 correlation data, else a new one."""
    if msg.user_properties.get("request_id"):
        return msg.user_properties["request_id"]
    if msg.correlation_data:
        return msg.correlation_data.decode("utf-8", errors="replace")
    return new_id()


class RecognizerService:
    def __init__(
        self, config: Config, bus: Bus, recognizer: Recognizer | None = None, gallery: Gallery | None = None
    ) -> None:
        self.settings = s = config.recognizer
        self.bus = bus
        self.topics = t = bus.topics
        self.rec = recognizer or Recognizer(s, config.data_dir)  # ModelError: the runner exits 2
        self.gallery = gallery or Gallery(s.resolve_gallery_path(config.data_dir))
        if stale := self.gallery.stale(self.rec.embedder_id):
            log.info("re-embedding %d enrollments made with another model", stale)
            self.rec.reembed_gallery(self.gallery)
        bus.subscribe(t.shared_snapshots, self.on_snapshot)
        bus.subscribe(t.train, self.on_train)
        bus.subscribe(t.train_raw_filter, self.on_train_raw)
        bus.subscribe(t.gallery_cmd, self.on_gallery_cmd)
        # event archive, face search and visitor ids (issue 7, docs/search.md)
        self.history = open_history(s.archive, config.data_dir, self.rec)
        bus.subscribe(t.search_cmd, lambda msg: answer_search(bus, msg, self.history))
        self._summary = self._gallery_summary()
        # Retained state, refreshed at every (re)connection from the cached summary: the hook runs on
        # paho's network thread, which must not wait on the gallery while a training holds it.
        bus.on_connected(lambda: bus.publish(self.topics.gallery, self._summary, retain=True))

    def start(self) -> None:
        log.info("recognizer ready: %s, gallery %s", self.rec.model_name, self.gallery.labels())

    def stop(self) -> None:
        self.gallery.close()
        if self.history is not None:
            self.history.close()

    # -------------------------------------------------------------------------------- snapshots

    def on_snapshot(self, msg: Message) -> None:
        meta = parse_meta(SnapshotMeta, msg.user_properties)
        camera = self.topics.camera_from_topic(msg.topic)
        if meta.camera != camera:
            raise ContractError(f"snapshot meta says camera {meta.camera!r} but the topic says {camera!r}")
        result = self.rec.recognize(msg.payload, self.gallery, meta.motion_box, (meta.width, meta.height))
        if self.history is not None:  # archived first, so unknown faces carry their visitor ids
            faces = self.history.record(meta, msg.payload, result)
        else:
            faces = [f.to_contract() for f in result.faces]
        self.bus.publish(
            self.topics.result(camera),
            RecognitionResult(
                camera=camera,
                event_id=meta.event_id,
                seq=meta.seq,
                verdict=result.verdict,
                faces=faces,
                timings_ms=result.timings_ms,
                model=self.rec.model_name,
                node=self.bus.node,
            ),
        )
        log.info(
            "%s #%d: %s %s in %.0f ms",
            camera,
            meta.seq,
            result.verdict.value,
            [f.label or f.rejected or "unknown" for f in faces],
            result.timings_ms.get("total", 0.0),
        )
        requested = meta.trigger == "manual"  # someone asked to see the door: show them, known or not
        if (
            requested
            or result.verdict == Verdict.UNKNOWN
            or (result.verdict == Verdict.NO_FACE and self.settings.alert_on_no_face)
        ):
            alert = Alert(
                requested=requested,
                camera=camera,
                event_id=meta.event_id,
                seq=meta.seq,
                verdict=result.verdict,
                faces=faces,
                snapshot_ts=meta.ts,
            )
            self.bus.publish(
                self.topics.alert(camera),
                self.rec.annotate(msg.payload, result.faces),
                user_properties=meta_property(alert),
                content_type=JPEG_CONTENT_TYPE,
            )

    # --------------------------------------------------------------------------------- training

    def on_train(self, msg: Message) -> None:
        try:
            req = parse(TrainRequest, msg.payload)
            try:
                image = base64.b64decode(req.image_b64, validate=True)
            except (binascii.Error, ValueError):
                raise ContractError("image_b64 is not valid base64") from None
        except ContractError as exc:
            self._answer(
                msg, TrainResult(request_id=request_id_of(msg), label=None, ok=False, reason=str(exc))
            )
            raise
        self._train(msg, req.request_id, req.label, image, req.largest, req.source)

    def on_train_raw(self, msg: Message) -> None:
        request_id = request_id_of(msg)
        try:
            label = self.topics.label_from_train_raw(msg.topic)
        except ContractError as exc:
            self._answer(msg, TrainResult(request_id=request_id, label=None, ok=False, reason=str(exc)))
            raise
        self._train(msg, request_id, label, msg.payload, largest=False, source="mqtt-raw")

    def _train(
        self, msg: Message, request_id: str, label: str, image: bytes, largest: bool, source: str
    ) -> None:
        try:
            out = self.rec.enroll(image, label, self.gallery, largest=largest, source=source)
        except ContractError as exc:  # not an image, too large...
            self._answer(msg, TrainResult(request_id=request_id, label=label, ok=False, reason=str(exc)))
            raise
        self._answer(
            msg,
            TrainResult(
                request_id=request_id,
                label=out.label,
                ok=out.ok,
                reason=out.reason,
                enrollment_id=out.enrollment_id,
                faces_found=out.faces_found,
                quality=out.quality,
            ),
        )
        if out.ok:
            self.publish_summary()
        else:
            log.info("training %r refused: %s", label, out.reason)

    # ---------------------------------------------------------------------------------- gallery

    def on_gallery_cmd(self, msg: Message) -> None:
        try:
            cmd = parse(GalleryCommand, msg.payload)
        except ContractError as exc:
            self._answer(msg, GalleryResult(request_id=request_id_of(msg), op="?", ok=False, reason=str(exc)))
            raise
        if cmd.op == "name_visitor":  # enroll an archived visitor's faces (issue 7)
            answer = name_visitor(cmd, self.gallery, self.history)
            self._answer(msg, answer)
            if answer.ok:
                self.publish_summary()
            return
        ok, reason, removed = self._apply(cmd)
        self._answer(
            msg,
            GalleryResult(
                request_id=cmd.request_id,
                op=cmd.op,
                ok=ok,
                reason=reason,
                labels=self.gallery.labels(),
                removed=removed,
            ),
        )
        if ok and cmd.op != "list":
            self.publish_summary()

    def _apply(self, cmd: GalleryCommand) -> tuple[bool, str | None, int]:
        """(ok, reason, enrollments removed or moved)."""
        g = self.gallery
        if cmd.op == "list":
            return True, None, 0
        if cmd.op == "delete_label":
            if cmd.label is None:
                return False, "delete_label needs 'label'", 0
            n = g.delete_label(cmd.label)
            return (True, None, n) if n else (False, f"no one is enrolled as {cmd.label!r}", 0)
        if cmd.op == "rename_label":
            if cmd.label is None or cmd.new_label is None:
                return False, "rename_label needs 'label' and 'new_label'", 0
            n = g.rename_label(cmd.label, cmd.new_label)
            return (True, None, n) if n else (False, f"no one is enrolled as {cmd.label!r}", 0)
        if cmd.enrollment_id is None:
            return False, "delete_enrollment needs 'enrollment_id'", 0
        if g.delete_enrollment(cmd.enrollment_id):
            return True, None, 1
        return False, f"no enrollment {cmd.enrollment_id}", 0

    # ---------------------------------------------------------------------------------- helpers

    def _answer(self, msg: Message, answer: Payload) -> None:
        """On the result topic for everyone, and on the requester's MQTT v5 response topic if it gave one."""
        topic = self.topics.train_result if isinstance(answer, TrainResult) else self.topics.gallery_result
        publish_answer(self.bus, msg, topic, answer)

    def _gallery_summary(self) -> GallerySummary:
        labels = self.gallery.labels()
        return GallerySummary(labels=labels, enrollments=sum(labels.values()), model=self.rec.model_name)

    def publish_summary(self) -> None:
        """After a gallery change (on the worker thread): recompute, cache and publish."""
        self._summary = self._gallery_summary()
        self.bus.publish(self.topics.gallery, self._summary, retain=True)
