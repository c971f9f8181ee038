"""What the recognizer does, whoever asks: recognize a snapshot, train, change the gallery, search the
event archive.

Each operation takes a decoded request and returns the contract's answer; it knows no bus and no MQTT
message, so the MQTT service and an HTTP API call the same methods. A request that can be read but not
granted (no face, no such label, no archive) is answered with `ok=False` and the reason. A request that
is itself broken (not an image, a label the contract refuses) raises ContractError: the adapter refuses
it with that reason and reports it.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from homesec.contract import (
    ALREADY_ENROLLED,
    Alert,
    DeleteEnrollment,
    DeleteLabel,
    DismissVisitor,
    EnrollFace,
    FaceSearch,
    GalleryCommand,
    GalleryResult,
    GallerySummary,
    LabelConflict,
    ListLabels,
    MergeLabels,
    NameVisitor,
    NotLabel,
    RecognitionResult,
    RenameLabel,
    SearchResult,
    SnapshotMeta,
    Training,
    TrainResult,
    UndoNot,
    Verdict,
)
from recognizer_node import negatives, people
from recognizer_node.archived_enroll import enroll_archived
from recognizer_node.gallery import SAME_PHOTO_SIMILARITY, Gallery
from recognizer_node.history import History, open_history, refusal
from recognizer_node.matching import conflicts
from recognizer_node.pipeline import Recognition, Recognizer
from recognizer_node.progress import Ticker, progress_wanted
from recognizer_node.repeats import AnsweredSnapshots, snapshot_key
from recognizer_node.settings import RecognizerSettings
from recognizer_node.visits import VisitDecision, Visits

log = logging.getLogger(__name__)

A = TypeVar("A")

ARCHIVE_OFF = (
    "no event archive: recognizer.archive.enabled is false, or the archive failed to open (see its log)"
)


@dataclass(frozen=True)
class AlertImage:
    """An alert: the snapshot with its faces boxed, and what the notifier needs to know about it."""

    meta: Alert
    jpeg: bytes


@dataclass(frozen=True)
class Outcome:
    """What a snapshot (or a visit's closing) gives to publish, in this order: the alert, then the
    results. A frame of a visit still waiting for its decision is held back: its result comes with the
    decision, after the alert, so no result confirms a snapshot before its visit's alert is out."""

    alert: AlertImage | None
    results: list[RecognitionResult]


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
        self._answered = AnsweredSnapshots()
        alert_on = {Verdict.UNKNOWN}
        if settings.alert_on_no_face:
            alert_on |= {Verdict.NO_FACE, Verdict.TOO_SMALL}
        self.visits = Visits(
            settings.visit_window_s, settings.visit_doubt_floor, alert_on=frozenset(alert_on)
        )
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
            bar = Ticker(stale, desc="re-embedding the gallery", unit="face", enabled=progress_wanted())
            with bar as tick:
                rec.reembed_gallery(gallery, tick)
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

    def receive(self, meta: SnapshotMeta, jpeg: bytes) -> Outcome:
        """`recognize`, with the results of frames whose visit is still waiting held back until it is
        decided (then they come, after the alert, in the outcome of the frame or of `due` that decides
        it): what the MQTT service publishes."""
        result, alert, released, held = self._recognize_snapshot(meta, jpeg, hold=True)
        return Outcome(alert, released if held else [*released, result])

    def due(self) -> list[Outcome]:
        """The visits whose decision window closed without the rest of their burst: their alert (when
        they call for one) and the results they held."""
        return [Outcome(self._visit_alert(d) if d.alert else None, d.held) for d in self.visits.due()]

    def recognize(self, meta: SnapshotMeta, jpeg: bytes) -> tuple[RecognitionResult, AlertImage | None]:
        """The result for everyone, and the alert when this snapshot decides its visit (the frames of a
        motion event alert once, recognizer_node/visits.py; `due` decides those cut short).

        A snapshot answered before (the same camera, event and seq) gets its result again, and its alert
        again, under the same key, when its first processing decided one: the camera publishes a
        snapshot again when it saw no result in time, the broker redelivers what was not acknowledged,
        and either may follow a recognizer killed before its alert went out; the notifier drops a copy it
        already took care of. After a restart the memory is empty and the archive only knows that the
        snapshot was answered, not what was decided (decisions are not archived), so the decision is
        made again from the frame: a capture alerts again under the same key; a visit's frame starts its
        visit afresh, and its alert names the best of the visit's frames that came again (the notifier
        drops it when that is the key it handled, and groups it into the visit's message otherwise)."""
        result, alert, _, _ = self._recognize_snapshot(meta, jpeg, hold=False)
        return result, alert

    def _recognize_snapshot(
        self, meta: SnapshotMeta, jpeg: bytes, *, hold: bool
    ) -> tuple[RecognitionResult, AlertImage | None, list[RecognitionResult], bool]:
        """The frame's result, its alert, the earlier frames' results its decision releases, and whether
        (with `hold`) its own result is held until its visit is decided."""
        key = snapshot_key(meta)
        if (known := self._answered.get(key)) is not None:
            result, alerted = known
            again = self._alert_again(alerted, meta, jpeg)
            log.info(
                "%s/%s #%d answered before: the same result, %s",
                *key,
                "its alert again" if again else "no alert",
            )
            return result, again, [], hold and self.visits.hold(result)
        archived = self._archived(meta)
        result, recognition = self._recognize(meta, jpeg)  # an archived one keeps its visitor ids
        result, alert, released = self._visit(meta, result, jpeg, recognition, hold)
        self._answered.put(key, result, None if alert is None else alert.meta)
        held = hold and result.visit is not None and not result.visit.decided  # held by `visits.add`
        if archived:  # not counted twice
            log.info("%s/%s #%d archived before: its result again, decided again", *key)
            return result, alert, released, held
        for observer in self._observers:
            observer(meta, result, alert is not None)
        return result, alert, released, held

    def _alert_again(self, alert: Alert | None, meta: SnapshotMeta, jpeg: bytes) -> AlertImage | None:
        """The alert a repeated snapshot decided the first time, its photo drawn again from its frame."""
        if alert is None:
            return None
        frame = jpeg if alert.seq == meta.seq else self.visits.photo(alert.camera, alert.event_id, alert.seq)
        if frame is None:
            log.warning(
                "%s/%s: the photo of its alert (#%d) is forgotten: not sent again",
                alert.camera,
                alert.event_id,
                alert.seq,
            )
            return None
        return AlertImage(alert, self.recognizer.annotate(frame, alert.faces))

    def unprocessable(self, camera: str, event_id: str, seq: int, reason: str) -> RecognitionResult:
        """The answer to a snapshot that cannot be processed (not an image, too large, bad metadata): it
        tells the camera the snapshot arrived, so that it stops publishing it again, and says why."""
        return RecognitionResult(
            camera=camera, event_id=event_id, seq=seq, verdict=Verdict.NO_FACE, faces=[], timings_ms={},
            model=self.recognizer.model_name, node=self.node, error=reason,
        )  # fmt: skip

    def _archived(self, meta: SnapshotMeta) -> bool:
        """Whether the archive holds the snapshot: answered by an earlier run."""
        if self.history is None:
            return False
        try:
            return self.history.archive.visitors_of(meta.event_id, meta.seq) is not None
        except (OSError, sqlite3.Error):  # an unusable archive must not stand in the way of an alert
            log.warning("could not ask the archive about %s/%d", meta.event_id, meta.seq, exc_info=True)
            return False

    def _recognize(self, meta: SnapshotMeta, jpeg: bytes) -> tuple[RecognitionResult, Recognition]:
        rec = self.recognizer
        recognition = rec.recognize(jpeg, self.gallery, meta.motion_box, (meta.width, meta.height))
        if self.history is not None:  # archived first, so unknown faces carry their visitor ids
            faces = self.history.record(meta, jpeg, recognition)
        else:
            faces = [f.to_contract() for f in recognition.faces]
        faces = people.named_faces(faces, self.gallery)
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
        return result, recognition

    def _visit(
        self,
        meta: SnapshotMeta,
        result: RecognitionResult,
        jpeg: bytes,
        recognition: Recognition,
        hold: bool = False,
    ) -> tuple[RecognitionResult, AlertImage | None, list[RecognitionResult]]:
        """The frame's result with its visit's state, the visit's alert when this frame decides it, and
        the results the decision releases (with `hold`, this one is kept while the visit waits). A
        capture someone asked for is shown at once, frame by frame, as it is."""
        if meta.trigger == "manual":
            return result, self._alert(meta, result, jpeg), []
        embeddings = [m.face.embedding if m.face.rejected is None else None for m in recognition.faces]
        state, decision = self.visits.add(meta, result, embeddings, jpeg, hold=hold)
        result = result.model_copy(update={"visit": state})
        if decision is None:
            return result, None, []
        return result, self._visit_alert(decision) if decision.alert else None, decision.held

    def _visit_alert(self, decision: VisitDecision) -> AlertImage:
        """The visit's one alert: its verdict, shown with its best frame (boxed for display only)."""
        best = decision.best
        alert = Alert(
            camera=decision.camera,
            event_id=decision.event_id,
            seq=best.meta.seq,
            verdict=decision.verdict,
            faces=best.result.faces,
            snapshot_ts=best.meta.ts,
            frames=decision.frames,
            revision=decision.revision,
        )
        log.info(
            "%s/%s: visit %s after %d frames (revision %d), alert with #%d",
            decision.camera, decision.event_id, decision.verdict.value, decision.frames,
            decision.revision, best.meta.seq,
        )  # fmt: skip
        return AlertImage(alert, self.recognizer.annotate(best.jpeg, best.result.faces))

    def _alert(self, meta: SnapshotMeta, result: RecognitionResult, jpeg: bytes) -> AlertImage | None:
        """For an unknown face, for no usable face (unless switched off), and for a capture someone asked
        for (/snapshot: show them the door, known or not)."""
        requested = meta.trigger == "manual"
        verdict = result.verdict
        faceless = verdict in (Verdict.NO_FACE, Verdict.TOO_SMALL)  # someone moved; no face to judge
        wanted = verdict == Verdict.UNKNOWN or (faceless and self.settings.alert_on_no_face)
        if not (requested or wanted):
            return None
        shared = result.model_dump(include={"camera", "event_id", "seq", "verdict", "faces"})
        alert = Alert.model_validate({**shared, "requested": requested, "snapshot_ts": meta.ts})
        return AlertImage(alert, self.recognizer.annotate(jpeg, alert.faces))  # named: `José`, in any script

    # ----------------------------------------------------------------------------------- training

    def train(self, req: Training) -> TrainResult:
        """Enroll the photo's one usable face (or its largest, when asked) as `req.label`."""
        return _unless_storage_fails(
            "gallery",
            lambda: self._train(req),
            lambda reason: TrainResult(request_id=req.request_id, label=req.label, ok=False, reason=reason),
        )

    def _train(self, req: Training) -> TrainResult:
        """A retry of a request that enrolled (the same id, asking the same) gets the first answer again;
        another request with the same photo of the label gets its enrollment, `notice` "already enrolled"
        (the bot's /train resent, an upload repeated), and adds nothing."""
        key = people.training_key(req)
        if (before := people.answered_training(self.gallery, key)) is not None:
            log.info("training %s answered before: the same answer, not enrolled again", req.request_id)
            return before
        person = self.gallery.person(req.label, req.name)
        out = self.recognizer.enroll(
            req.image, person.label, self.gallery, largest=req.largest, source=req.source, force=req.force,
            request_key=key, same_within=SAME_PHOTO_SIMILARITY,
        )  # fmt: skip
        if out.ok:
            self.gallery.set_name(person)
            self._gallery_changed()
        else:
            log.info("training %r refused: %s", req.label, out.reason)
        answer = TrainResult(
            request_id=req.request_id,
            label=out.label,
            name=person.name,
            ok=out.ok,
            reason=out.reason,
            enrollment_id=out.enrollment_id,
            faces_found=out.faces_found,
            quality=out.quality,
            looks_like=out.looks_like,
            looks_like_similarity=out.looks_like_similarity,
            notice=ALREADY_ENROLLED if out.already_enrolled else None,
        )
        if out.ok:
            self.gallery.remember_answer(key, answer.model_dump_json())
        return answer

    # ------------------------------------------------------------------------------------ gallery

    def gallery_command(self, cmd: GalleryCommand) -> GalleryResult:
        return _unless_storage_fails("gallery", lambda: self._gallery_command(cmd), lambda r: refusal(cmd, r))

    def _gallery_command(self, given: GalleryCommand) -> GalleryResult:
        named = people.resolve_command(given, self.gallery)  # labels for the names it gives
        if isinstance(named, str):
            return refusal(given, named)
        cmd, person = named
        answer = self._resolved_command(cmd)
        if answer.ok and person is not None:
            self.gallery.set_name(person)
        if answer.ok and not isinstance(cmd, ListLabels | DismissVisitor):  # these leave the gallery as is
            self._gallery_changed()
        return people.with_names(answer, self.gallery)

    def _resolved_command(self, cmd: GalleryCommand) -> GalleryResult:
        if isinstance(cmd, NameVisitor):
            answer = self._name_visitor(cmd)
        elif isinstance(cmd, DismissVisitor):
            answer = self._dismiss_visitor(cmd)
        elif isinstance(cmd, NotLabel):
            answer = self._not_label(cmd)
        elif isinstance(cmd, EnrollFace):
            answer = self._enroll_face(cmd)
        elif isinstance(cmd, UndoNot):
            answer = self._undo_not(cmd)
        elif isinstance(cmd, ListLabels):
            answer = self._list(cmd)
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
        return answer

    def _list(self, cmd: ListLabels) -> GalleryResult:
        """The labels, their negatives, and the labels that match each other (one person, two names?)."""
        matrix = self.gallery.matrix(self.recognizer.embedder_id)
        found = conflicts(matrix, self.settings.match_threshold)
        return GalleryResult(
            request_id=cmd.request_id,
            op=cmd.op,
            ok=True,
            labels=self.gallery.labels(),
            negatives=self.gallery.negatives(),
            conflicts=[LabelConflict(label=a, other=b, similarity=sim) for a, b, sim in found],
        )

    def _edit(
        self, cmd: DeleteLabel | RenameLabel | DeleteEnrollment | MergeLabels
    ) -> tuple[str | None, int]:
        """(why refused or None, enrollments removed or moved)."""
        g = self.gallery
        if isinstance(cmd, MergeLabels):
            return self._merge(cmd)
        if isinstance(cmd, DeleteEnrollment):
            found = g.delete_enrollment(cmd.enrollment_id)
            return (None, 1) if found else (f"no enrollment {cmd.enrollment_id}", 0)
        n = (
            g.delete_label(cmd.label)
            if isinstance(cmd, DeleteLabel)
            else g.rename_label(cmd.label, cmd.new_label)
        )
        return (None, n) if n else (f"no one is enrolled as {cmd.label!r}", 0)

    def _merge(self, cmd: MergeLabels) -> tuple[str | None, int]:
        """Unlike a rename, both labels must be enrolled: a typo must not quietly rename someone."""
        enrolled = {label.lower() for label in self.gallery.labels()}
        for label in (cmd.label, cmd.into):
            if label.lower() not in enrolled:
                return f"no one is enrolled as {label!r}", 0
        if cmd.label.lower() == cmd.into.lower():
            return f"{cmd.label!r} and {cmd.into!r} are already one label", 0
        return None, self.gallery.rename_label(cmd.label, cmd.into)

    def _not_label(self, cmd: NotLabel) -> GalleryResult:
        """Keep the face as a negative of `cmd.label`: matching will not name it (or its look-alikes
        closer to it than to the label's own photos) that label again."""
        image = cmd.image
        if image is not None:
            face = negatives.from_photo(self.recognizer, image)
        elif self.history is None:
            return refusal(cmd, ARCHIVE_OFF)
        else:
            face = negatives.from_archive(self.recognizer, self.history.archive, cmd)
        if isinstance(face, str):
            return refusal(cmd, face)
        label = cmd.label or face.named
        if label is None:
            return refusal(cmd, f"that face ({face.source}) was not named: there is no name to correct")
        if label.lower() not in {name.lower() for name in self.gallery.labels()}:
            return refusal(cmd, f"no one is enrolled as {label!r}")
        g = self.gallery
        archived = face.source != negatives.PHOTO
        said = [n.id for n in g.negative_faces(label) if archived and n.source == face.source]
        if said:  # said twice: the same negative
            negative_id = said[0]
        else:
            negative_id = g.add_negative(
                label, face.embedding, self.recognizer.embedder_id, face.crop, face.crop_format, face.source
            )
            log.info("not %r: negative %d from %s", label, negative_id, face.source)
        return GalleryResult(
            request_id=cmd.request_id, op=cmd.op, ok=True, labels=g.labels(), negatives=g.negatives(),
            negative_id=negative_id,
        )  # fmt: skip

    def _undo_not(self, cmd: UndoNot) -> GalleryResult:
        """Take a "not X" back: the face may be named X again."""
        label = self.gallery.delete_negative(cmd.negative_id)
        if label is None:
            return refusal(cmd, f"no negative {cmd.negative_id} (taken back already, or its label deleted)")
        log.info("not %r taken back: negative %d forgotten", label, cmd.negative_id)
        g = self.gallery
        return GalleryResult(
            request_id=cmd.request_id, op=cmd.op, ok=True, labels=g.labels(), negatives=g.negatives(),
            negative_id=cmd.negative_id,
        )  # fmt: skip

    def _enroll_face(self, cmd: EnrollFace) -> GalleryResult:
        """Enroll an archived face: the clean one an alert showed boxed."""
        if self.history is None:
            return refusal(cmd, ARCHIVE_OFF)
        return enroll_archived(self.recognizer, self.history.archive, self.gallery, cmd)

    def _name_visitor(self, cmd: NameVisitor) -> GalleryResult:
        if self.history is None:
            return refusal(cmd, ARCHIVE_OFF)
        return self.history.name_visitor(cmd, self.gallery)

    def _dismiss_visitor(self, cmd: DismissVisitor) -> GalleryResult:
        if self.history is None:
            return refusal(cmd, ARCHIVE_OFF)
        return self.history.dismiss_visitor(cmd)

    def _summarize(self) -> GallerySummary:
        labels = self.gallery.labels()
        return GallerySummary(
            labels=labels,
            names=self.gallery.names(),
            enrollments=sum(labels.values()),
            model=self.recognizer.model_name,
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
        history = self.history
        return _unless_storage_fails(
            "archive",
            lambda: history.answer_search(req),
            lambda reason: SearchResult(request_id=req.request_id, ok=False, reason=reason),
        )


def _unless_storage_fails(store: str, work: Callable[[], A], refuse: Callable[[str], A]) -> A:
    """`work()`, or `refuse(reason)` when the disk or the database under `store` fails.

    A request is answered either way: the requester learns why (and can ask again once the cause is
    gone) instead of waiting for an answer that never comes.
    """
    try:
        return work()
    except (OSError, sqlite3.Error) as exc:
        reason = storage_problem(store, exc)
        log.error("%s", reason, exc_info=True)
        return refuse(reason)


def storage_problem(store: str, exc: OSError | sqlite3.Error) -> str:
    """Why the `store` (gallery, archive) could not be used, in words for whoever asked."""
    detail = f"{type(exc).__name__}: {exc}"
    full = "full" in str(exc) and isinstance(exc, sqlite3.OperationalError)  # SQLITE_FULL
    if full or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return f"refused: disk full, the {store} cannot be written ({detail}); free some space and retry"
    if isinstance(exc, sqlite3.Error):
        return f"refused: the {store} database is unusable ({detail}); see the recognizer's log"
    return f"refused: the {store} storage failed ({detail})"
