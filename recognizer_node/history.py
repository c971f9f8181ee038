"""What the recognizer service calls for the event history (issue 7).

- `record`: archive a recognized snapshot, giving its recurring unknown faces visitor ids (and how many
  events this week each visitor was seen in); the returned contract faces go into the result and alert.
  Archiving never stands in the way of an alert: a failure is logged and the faces go out without ids.
- `handle_search`: the `recognizer/cmd/search` handler, answered from the archive.
- `name_visitor`: the `name_visitor` gallery op, enrolling a visitor's archived faces under a label.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from homesec.bus import publish_answer
from homesec.contract import (
    Face,
    GalleryCommand,
    GalleryResult,
    SearchHit,
    SearchRequest,
    SearchResult,
    SnapshotMeta,
    check_label,
    parse,
)
from recognizer_node.archive import Archive, ArchivedFace, ArchiveHit, SnapshotRecord, parse_ts
from recognizer_node.imageio import decode_rgb, encode_jpeg
from recognizer_node.search import query_face

if TYPE_CHECKING:
    from homesec.bus import Bus, Message
    from recognizer_node.gallery import Gallery
    from recognizer_node.pipeline import MatchedFace, Recognition, Recognizer
    from recognizer_node.settings import ArchiveSettings

log = logging.getLogger(__name__)

WEEK_S = 7 * 86400
NAME_VISITOR_MAX = 20  # naming a visitor enrolls at most its 20 best faces


class History:
    def __init__(self, settings: ArchiveSettings, data_dir: Path, recognizer: Recognizer) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.recognizer = recognizer
        self.archive = Archive(
            settings.resolve_dir(data_dir),
            recognizer.embedder_id,
            max_age_s=settings.max_age_days * 86400,
            max_bytes=int(settings.max_mb * 1_000_000),
            prune_every=settings.prune_every,
            visitor_threshold=settings.visitor_threshold if settings.visitors else None,
        )
        self.archive.prune()  # age-based retention also after a long idle spell

    def close(self) -> None:
        self.archive.close()

    # ------------------------------------------------------------------------------------ archiving

    def record(self, meta: SnapshotMeta, jpeg: bytes, recognition: Recognition) -> list[Face]:
        """Archive the snapshot; the contract faces, with visitor ids where a visitor was recognized."""
        faces = [m.to_contract() for m in recognition.faces]
        try:
            ts = _timestamp(meta.ts)
            record = SnapshotRecord(
                meta.event_id,
                meta.seq,
                meta.camera,
                ts,
                recognition.verdict.value,
                [self._archived(m) for m in recognition.faces],
                jpeg if self.settings.keep_snapshots else None,
            )
            visitors = self.archive.add(record)
            return [
                f if v is None else f.model_copy(
                    update={"visitor": str(v), "visitor_seen_week": self.archive.sightings(v, ts - WEEK_S)}
                )
                for f, v in zip(faces, visitors, strict=True)
            ]  # fmt: skip
        except Exception:  # disk full, corrupt archive...: the alert matters more than its history
            log.exception("could not archive snapshot %s/%d", meta.event_id, meta.seq)
            return faces

    def _archived(self, m: MatchedFace) -> ArchivedFace:
        f = m.face
        candidate = (
            self.settings.visitors
            and m.label is None
            and f.rejected is None
            and f.embedding is not None
            and f.px >= self.settings.visitor_min_face_px
        )
        return ArchivedFace(
            f.box, m.label, m.similarity, f.quality, f.rejected, f.embedding,
            encode_jpeg(f.crop, quality=95) if candidate else None, candidate,
        )  # fmt: skip

    # --------------------------------------------------------------------------------------- search

    def search(
        self, image: bytes, threshold: float | None = None, top: int | None = None
    ) -> list[ArchiveHit]:
        """Archived events with the largest face of `image` (ContractError when it has none)."""
        face = query_face(self.recognizer, image)
        assert face.embedding is not None  # query_face embeds every face
        limit = self.recognizer.settings.match_threshold if threshold is None else threshold
        return self.archive.search(face.embedding, limit, top)

    def handle_search(self, bus: Bus, msg: Message) -> None:
        """Answer on `search_result`, and on the MQTT v5 response topic when the request has one."""
        req = parse(SearchRequest, msg.payload)
        try:
            data = base64.b64decode(req.image_b64, validate=True)
            hits = self.search(data, req.threshold, req.top)
            result = SearchResult(request_id=req.request_id, ok=True, hits=[self._hit(h) for h in hits])
        except (binascii.Error, ValueError) as exc:  # ContractError is a ValueError
            reason = "image_b64 is not base64" if isinstance(exc, binascii.Error) else str(exc)
            result = SearchResult(request_id=req.request_id, ok=False, reason=reason)
        publish_answer(bus, msg, bus.topics.search_result, result)

    def _hit(self, h: ArchiveHit) -> SearchHit:
        snapshot = None
        if h.snapshot is not None:  # relative to the data directory: the asker may be on another host
            snapshot = str(
                h.snapshot.relative_to(self.data_dir)
                if h.snapshot.is_relative_to(self.data_dir)
                else h.snapshot
            )
        return SearchHit(
            event_id=h.event_id,
            camera=h.camera,
            ts=h.ts_iso,
            similarity=h.similarity,
            box=h.box,
            snapshot=snapshot,
        )

    # ------------------------------------------------------------------------------------- visitors

    def name_visitor(self, cmd: GalleryCommand, gallery: Gallery) -> GalleryResult:
        """Enroll the visitor's archived faces (its best NAME_VISITOR_MAX) under `cmd.label`."""
        if cmd.visitor is None or cmd.label is None:  # refused, not raised: the requester awaits an answer
            return _refusal(cmd, "name_visitor needs 'visitor' (id) and 'label'")
        label = check_label(cmd.label)
        faces = self.archive.visitor_faces(cmd.visitor, NAME_VISITOR_MAX)
        if not faces:
            return _refusal(cmd, f"no archived faces of visitor {cmd.visitor}")
        model = self.recognizer.embedder_id
        for embedding, emb_model, crop, quality in faces:
            if embedding is None or emb_model != model:  # archived by another model: re-embed the crop
                embedding = self.recognizer.embed_crop(decode_rgb(crop))
            gallery.add(label, embedding, model, crop, "jpeg", quality, f"visitor:{cmd.visitor}")
        self.archive.name_visitor(cmd.visitor, label)
        log.info("named visitor %d %r: %d faces enrolled", cmd.visitor, label, len(faces))
        return GalleryResult(
            request_id=cmd.request_id, op=cmd.op, ok=True, labels=gallery.labels(), enrolled=len(faces)
        )


def _timestamp(value: str) -> float:
    try:
        return parse_ts(value)
    except ValueError:  # the contract does not validate `ts`: fall back to the arrival time
        return time.time()


# ---------------------------------------------------------------------- service hooks (archive may be off)

ARCHIVE_OFF = (
    "no event archive: recognizer.archive.enabled is false, or the archive failed to open (see its log)"
)


def open_history(settings: ArchiveSettings, data_dir: Path, recognizer: Recognizer) -> History | None:
    """The history, or None when switched off or unusable: alerts must flow even without an archive."""
    if not settings.enabled:
        return None
    try:
        return History(settings, data_dir, recognizer)
    except Exception:
        log.exception("event archive unusable in %s: running without it", settings.resolve_dir(data_dir))
        return None


def answer_search(bus: Bus, msg: Message, history: History | None) -> None:
    """The `search_cmd` handler: answered from the archive, or refused when there is none."""
    if history is not None:
        history.handle_search(bus, msg)
        return
    req = parse(SearchRequest, msg.payload)
    refusal = SearchResult(request_id=req.request_id, ok=False, reason=ARCHIVE_OFF)
    publish_answer(bus, msg, bus.topics.search_result, refusal)


def name_visitor(cmd: GalleryCommand, gallery: Gallery, history: History | None) -> GalleryResult:
    if history is None:
        return _refusal(cmd, ARCHIVE_OFF)
    return history.name_visitor(cmd, gallery)


def _refusal(cmd: GalleryCommand, reason: str) -> GalleryResult:
    return GalleryResult(request_id=cmd.request_id, op=cmd.op, ok=False, reason=reason)
