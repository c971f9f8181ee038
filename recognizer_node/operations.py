"""What the recognizer does, whoever asks: recognize a snapshot, train, change the gallery, search the
event archive.

Each operation takes a decoded request and returns the contract's answer; it knows no bus and no MQTT
message, so the MQTT service and an HTTP API call the same methods. A request that can be read but not
granted (no face, no such label, no archive) is answered with `ok=False` and the reason. A request that
is itself broken (not an image, a label the contract refuses) raises ContractError: the adapter refuses
it with that reason and reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from homesec.contract import (
    Alert,
    DeleteEnrollment,
    DeleteLabel,
    FaceSearch,
    GalleryCommand,
    GalleryResult,
    GallerySummary,
    ListLabels,
    NameVisitor,
    RecognitionResult,
    RenameLabel,
    SearchResult,
    SnapshotMeta,
    Training,
    TrainResult,
    Verdict,
)
from recognizer_node.gallery import Gallery
from recognizer_node.history import History, open_history, refusal
from recognizer_node.pipeline import Recognition, Recognizer
from recognizer_node.settings import RecognizerSettings

log = logging.getLogger(__name__)

ARCHIVE_OFF = (
    "no event archive: recognizer.archive.enabled is false, or the archive failed to open (see its log)"
)


@dataclass(frozen=True)
class AlertImage:
    """An alert: the snapshot with its faces boxed, and what the notifier needs to know about it."""

    meta: Alert
    jpeg: bytes


class RecognizerOperations:
    """The recognizer, its gallery and (unless switched off or unusable) its event history."""

    def __init__(
        self,
        settings: RecognizerSettings,
        recognizer: Recognizer,
        gallery: Gallery,
        history: History | None,
        *,
        node: str,
    ) -> None:
        self.settings = settings
        self.recognizer = recognizer
        self.gallery = gallery
        self.history = history
        self.node = node  # named in every result
        self._listeners: list[Callable[[GallerySummary], None]] = []
        self._observers: list[Callable[[SnapshotMeta, RecognitionResult, bool], None]] = []
        self.summary = self._summarize()

    @classmethod
    def open(
        cls,
        settings: RecognizerSettings,
        data_dir: Path,
        *,
        node: str,
        recognizer: Recognizer | None = None,
        gallery: Gallery | None = None,
    ) -> RecognizerOperations:
        """Load the models (ModelError when they are missing or altered) and open the stores."""
        rec = recognizer or Recognizer(settings, data_dir)
        gallery = gallery or Gallery(settings.resolve_gallery_path(data_dir))
        if stale := gallery.stale(rec.embedder_id):
            log.info("re-embedding %d enrollments made with another model", stale)
            rec.reembed_gallery(gallery)
        return cls(settings, rec, gallery, open_history(settings.archive, data_dir, rec), node=node)

    def close(self) -> None:
        self.gallery.close()
        if self.history is not None:
            self.history.close()

    def on_gallery_change(self, listener: Callable[[GallerySummary], None]) -> None:
        """Call `listener` with the new summary after every change of the gallery (on that caller's thread)."""
        self._listeners.append(listener)

    def on_recognized(self, observer: Callable[[SnapshotMeta, RecognitionResult, bool], None]) -> None:
        """Call `observer` after every recognized snapshot with its meta, its result and whether it alerts
        (the HTTP API's metrics count them)."""
        self._observers.append(observer)

    # ---------------------------------------------------------------------------------- snapshots

    def recognize(self, meta: SnapshotMeta, jpeg: bytes) -> tuple[RecognitionResult, AlertImage | None]:
        """The result for everyone, and the alert when the snapshot calls for one."""
        rec = self.recognizer
        recognition = rec.recognize(jpeg, self.gallery, meta.motion_box, (meta.width, meta.height))
        if self.history is not None:  # archived first, so unknown faces carry their visitor ids
            faces = self.history.record(meta, jpeg, recognition)
        else:
            faces = [f.to_contract() for f in recognition.faces]
        result = RecognitionResult(
            camera=meta.camera,
            event_id=meta.event_id,
            seq=meta.seq,
            verdict=recognition.verdict,
            faces=faces,
            timings_ms=recognition.timings_ms,
            model=rec.model_name,
            node=self.node,
        )
        alert = self._alert(meta, result, jpeg, recognition)
        for observer in self._observers:
            observer(meta, result, alert is not None)
        return result, alert

    def _alert(
        self, meta: SnapshotMeta, result: RecognitionResult, jpeg: bytes, recognition: Recognition
    ) -> AlertImage | None:
        """For an unknown face, for no usable face (unless switched off), and for a capture someone asked
        for (/snapshot: show them the door, known or not)."""
        requested = meta.trigger == "manual"
        verdict = result.verdict
        wanted = verdict == Verdict.UNKNOWN or (verdict == Verdict.NO_FACE and self.settings.alert_on_no_face)
        if not (requested or wanted):
            return None
        shared = result.model_dump(include={"camera", "event_id", "seq", "verdict", "faces"})
        alert = Alert.model_validate({**shared, "requested": requested, "snapshot_ts": meta.ts})
        return AlertImage(alert, self.recognizer.annotate(jpeg, recognition.faces))

    # ----------------------------------------------------------------------------------- training

    def train(self, req: Training) -> TrainResult:
        """Enroll the photo's one usable face (or its largest, when asked) as `req.label`."""
        out = self.recognizer.enroll(
            req.image, req.label, self.gallery, largest=req.largest, source=req.source
        )
        if out.ok:
            self._gallery_changed()
        else:
            log.info("training %r refused: %s", req.label, out.reason)
        return TrainResult(
            request_id=req.request_id,
            label=out.label,
            ok=out.ok,
            reason=out.reason,
            enrollment_id=out.enrollment_id,
            faces_found=out.faces_found,
            quality=out.quality,
        )

    # ------------------------------------------------------------------------------------ gallery

    def gallery_command(self, cmd: GalleryCommand) -> GalleryResult:
        if isinstance(cmd, NameVisitor):
            answer = self._name_visitor(cmd)
        else:
            refused, removed = self._edit(cmd)
            answer = GalleryResult(
                request_id=cmd.request_id,
                op=cmd.op,
                ok=refused is None,
                reason=refused,
                labels=self.gallery.labels(),
                removed=removed,
            )
        if answer.ok and not isinstance(cmd, ListLabels):
            self._gallery_changed()
        return answer

    def _edit(self, cmd: ListLabels | DeleteLabel | RenameLabel | DeleteEnrollment) -> tuple[str | None, int]:
        """(why refused or None, enrollments removed or moved)."""
        g = self.gallery
        if isinstance(cmd, ListLabels):
            return None, 0
        if isinstance(cmd, DeleteEnrollment):
            found = g.delete_enrollment(cmd.enrollment_id)
            return (None, 1) if found else (f"no enrollment {cmd.enrollment_id}", 0)
        n = (
            g.delete_label(cmd.label)
            if isinstance(cmd, DeleteLabel)
            else g.rename_label(cmd.label, cmd.new_label)
        )
        return (None, n) if n else (f"no one is enrolled as {cmd.label!r}", 0)

    def _name_visitor(self, cmd: NameVisitor) -> GalleryResult:
        if self.history is None:
            return refusal(cmd, ARCHIVE_OFF)
        return self.history.name_visitor(cmd, self.gallery)

    def _summarize(self) -> GallerySummary:
        labels = self.gallery.labels()
        return GallerySummary(
            labels=labels, enrollments=sum(labels.values()), model=self.recognizer.model_name
        )

    def _gallery_changed(self) -> None:
        self.summary = self._summarize()
        for listener in self._listeners:
            listener(self.summary)

    # ------------------------------------------------------------------------------------- search

    def search(self, req: FaceSearch) -> SearchResult:
        """Archived events with the photo's largest face, most similar first."""
        if self.history is None:
            return SearchResult(request_id=req.request_id, ok=False, reason=ARCHIVE_OFF)
        return self.history.answer_search(req)
