"""The event history: archiving recognized snapshots, searching them for a face, naming visitors.

- `record`: archive a recognized snapshot, giving its recurring unknown faces visitor ids (and how many
  events this week each visitor was seen in); the returned contract faces go into the result and alert.
  Archiving never stands in the way of an alert: a failure is logged and the faces go out without ids.
- `answer_search`: the archived events with the query photo's largest face.
- `name_visitor`: enroll a visitor's archived faces under a label; `dismiss_visitor`: forget a visitor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from homesec.contract import (
    DismissVisitor,
    Face,
    FaceSearch,
    GalleryCommand,
    GalleryResult,
    NameVisitor,
    SearchHit,
    SearchResult,
    SnapshotMeta,
)
from homesec.settings import mb_to_bytes
from recognizer_node.archive import Archive, ArchivedFace, ArchiveHit, SnapshotRecord
from recognizer_node.imageio import decode_rgb, encode_jpeg
from recognizer_node.negatives import archived_face
from recognizer_node.pipeline import NoFaceError, query_face

if TYPE_CHECKING:
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
            max_bytes=mb_to_bytes(settings.max_mb),
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
            ts = meta.ts.timestamp()
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

    def answer_search(self, req: FaceSearch) -> SearchResult:
        """The hits, or a refusal when the photo has no face (not an image: ContractError) or the
        archived face asked for is not there."""
        if req.image is not None:
            try:
                hits = self.search(req.image, req.threshold, req.top)
            except NoFaceError as exc:
                return SearchResult(request_id=req.request_id, ok=False, reason=str(exc))
            return SearchResult(request_id=req.request_id, ok=True, hits=[self._hit(h) for h in hits])
        assert req.event_id is not None and req.seq is not None and req.face is not None  # the contract's
        face = archived_face(self.recognizer, self.archive, req.event_id, req.seq, req.face)
        if isinstance(face, str):  # the clean archived face, not the alert's boxed photo of it
            return SearchResult(request_id=req.request_id, ok=False, reason=face)
        limit = self.recognizer.settings.match_threshold if req.threshold is None else req.threshold
        hits = self.archive.search(face.embedding, limit, req.top)
        return SearchResult(request_id=req.request_id, ok=True, hits=[self._hit(h) for h in hits])

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

    def name_visitor(self, cmd: NameVisitor, gallery: Gallery) -> GalleryResult:
        """Enroll the visitor's archived faces (its best NAME_VISITOR_MAX) under `cmd.label`."""
        faces = self.archive.visitor_faces(cmd.visitor, NAME_VISITOR_MAX)
        if not faces:
            return refusal(cmd, f"no archived faces of visitor {cmd.visitor}")
        model = self.recognizer.embedder_id
        for embedding, emb_model, crop, quality in faces:
            if embedding is None or emb_model != model:  # archived by another model: re-embed the crop
                embedding = self.recognizer.embed_crop(decode_rgb(crop))
            gallery.add(cmd.label, embedding, model, crop, "jpeg", quality, f"visitor:{cmd.visitor}")
        self.archive.name_visitor(cmd.visitor, cmd.label)
        log.info("named visitor %d %r: %d faces enrolled", cmd.visitor, cmd.label, len(faces))
        return GalleryResult(
            request_id=cmd.request_id, op=cmd.op, ok=True, labels=gallery.labels(), enrolled=len(faces)
        )

    def dismiss_visitor(self, cmd: DismissVisitor) -> GalleryResult:
        if not self.archive.dismiss_visitor(cmd.visitor):
            return refusal(cmd, f"no visitor {cmd.visitor}")
        log.info("dismissed visitor %d", cmd.visitor)
        return GalleryResult(request_id=cmd.request_id, op=cmd.op, ok=True)


def refusal(cmd: GalleryCommand, reason: str) -> GalleryResult:
    return GalleryResult(request_id=cmd.request_id, op=cmd.op, ok=False, reason=reason)


def open_history(settings: ArchiveSettings, data_dir: Path, recognizer: Recognizer) -> History | None:
    """The history, or None when switched off or unusable: alerts must flow even without an archive."""
    if not settings.enabled:
        return None
    try:
        return History(settings, data_dir, recognizer)
    except Exception:
        log.exception("event archive unusable in %s: running without it", settings.resolve_dir(data_dir))
        return None
