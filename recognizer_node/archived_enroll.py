"""Enrolling a face the archive kept: what "Enroll this person" and a reply to an alert train on.

The alert's photo has its faces boxed (red, with a label): for an 80-120 px face a fifth of the aligned
crop is box, and its embedding is only about 0.8 (cosine) of the clean face's. So an enrollment from an
alert names the archived face (event id, seq, face index) and is made from the clean archived snapshot:
the face is found again in it as enrolling that photo would find it, through the same gates and guard.
"""

from __future__ import annotations

import logging

import numpy as np

from homesec.contract import EnrollFace, GalleryResult
from recognizer_node.archive import Archive
from recognizer_node.archive_browse import snapshot_path
from recognizer_node.gallery import Gallery
from recognizer_node.history import refusal
from recognizer_node.imageio import decode_rgb, encode_png
from recognizer_node.negatives import NegativeFace, archived_face, recut
from recognizer_node.pipeline import EnrollCrop, Recognizer
from recognizer_node.quality import Gates, face_px, sharpness

log = logging.getLogger(__name__)


def enroll_archived(
    recognizer: Recognizer, archive: Archive, gallery: Gallery, cmd: EnrollFace
) -> GalleryResult:
    """Enroll face `cmd.face` of archived snapshot `cmd.event_id`/`cmd.seq` as `cmd.label`."""
    face = archived_face(recognizer, archive, cmd.event_id, cmd.seq, cmd.face)
    if isinstance(face, str):
        return refusal(cmd, face)
    found = _from_snapshot(recognizer, archive, cmd, face)
    if isinstance(found, str):
        return refusal(cmd, f"that face cannot be enrolled: {found}")
    embedding, crop = found
    out = recognizer.enroll_embedding(
        embedding, crop, cmd.label, gallery, source=face.source, force=cmd.force
    )
    if not out.ok:
        log.info("enrolling %s as %r refused: %s", face.source, cmd.label, out.reason)
    return GalleryResult(
        request_id=cmd.request_id,
        op=cmd.op,
        ok=out.ok,
        reason=out.reason,
        labels=gallery.labels(),
        enrolled=1 if out.ok else 0,
        enrollment_id=out.enrollment_id,
    )


def _from_snapshot(
    recognizer: Recognizer, archive: Archive, cmd: EnrollFace, face: NegativeFace
) -> tuple[np.ndarray, EnrollCrop] | str:
    """The face as enrolling the clean snapshot itself finds it (the same detection and gates as any
    photo); from the archived crop when the snapshot is no longer kept. Or why it is unfit."""
    s = recognizer.settings
    gates = Gates(s.enroll_min_face_px, s.min_det_score, s.enroll_min_sharpness)
    path = archive.read(lambda db: snapshot_path(db, archive.directory, cmd.event_id, cmd.seq))
    again = recut(recognizer, path.read_bytes(), face.box) if path is not None and face.box else None
    if again is not None:
        if (unfit := gates.reject_reason(again.px, again.score, again.sharpness)) is not None:
            return unfit
        embedding = again.embedding if again.embedding is not None else recognizer.embed_crop(again.crop)
        return embedding, EnrollCrop(encode_png(again.crop), "png", again.quality)
    if face.crop is None or face.crop_format is None:  # an enrollment keeps its face for a later model
        return "its photo is no longer kept"
    if face.rejected is not None:
        return face.rejected
    px = face_px(face.box) if face.box is not None else s.enroll_min_face_px
    # its detection score passed recognition's gate, which enrollment shares
    if (unfit := gates.reject_reason(px, 1.0, sharpness(decode_rgb(face.crop)))) is not None:
        return unfit
    return face.embedding, EnrollCrop(face.crop, face.crop_format, face.quality)
