"""'Not X': find the face a household says was wrongly named, in the event archive or in a photo.

An archived face is addressed as the result named it: event id, seq, and its index in the result's
`faces` (the archive keeps them in that order). Its archived embedding is used as it is; the aligned
face is kept beside it when the archive has one, or is cut again from the archived snapshot, so the
negative can be re-embedded by a later model like any enrollment.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homesec.contract import NotLabel
from recognizer_node.archive import Archive, Box
from recognizer_node.archive_browse import snapshot_path
from recognizer_node.imageio import decode_rgb, encode_png
from recognizer_node.pipeline import AnalyzedFace, NoFaceError, Recognizer, query_face

PHOTO = "photo"  # the source of a negative taken from a photo (an archived one names its face)


@dataclass(frozen=True)
class NegativeFace:
    embedding: np.ndarray
    crop: bytes | None  # the aligned face, when it could be had
    crop_format: str | None
    source: str
    named: str | None = None  # the label the archived face was given
    quality: float | None = None  # an archived face's, as recognition measured it
    rejected: str | None = None  # why recognition did not use the archived face
    box: Box | None = None  # an archived face's, in snapshot pixels


@dataclass(frozen=True)
class _Archived:
    box: Box
    label: str | None
    quality: float | None
    rejected: str | None
    embedding: np.ndarray | None
    model: str | None
    crop: bytes | None
    snapshot: Path | None


def from_photo(recognizer: Recognizer, image: bytes) -> NegativeFace | str:
    """The photo's largest face, or why there is none (not an image: ContractError)."""
    try:
        face = query_face(recognizer, image)
    except NoFaceError as exc:
        return str(exc)
    assert face.embedding is not None  # query_face embeds every face
    return NegativeFace(face.embedding, encode_png(face.crop), "png", PHOTO)


def from_archive(recognizer: Recognizer, archive: Archive, cmd: NotLabel) -> NegativeFace | str:
    """The archived face `cmd` names, or why it cannot be had."""
    assert cmd.event_id is not None and cmd.seq is not None and cmd.face is not None  # the contract's rule
    return archived_face(recognizer, archive, cmd.event_id, cmd.seq, cmd.face)


def archived_face(
    recognizer: Recognizer, archive: Archive, event_id: str, seq: int, index: int
) -> NegativeFace | str:
    """Face `index` of archived snapshot `event_id`/`seq`, clean (no box drawn), or why it cannot be had."""
    where = f"{event_id}/{seq}"
    found = archive.read(lambda db: _archived_face(db, archive.directory, event_id, seq, index))
    if found is None:
        return f"no face {index} in archived snapshot {where} (not archived, or deleted by retention)"
    source = f"event:{where}#{index}"
    crop, fmt = (found.crop, "jpeg") if found.crop is not None else (None, None)
    if crop is None and found.snapshot is not None:
        cut = recut(recognizer, found.snapshot.read_bytes(), found.box)
        crop, fmt = (encode_png(cut.crop), "png") if cut is not None else (None, None)
    embedding = found.embedding if found.model == recognizer.embedder_id else None
    if embedding is None and crop is not None:  # not embedded (a rejected face) or by another model
        embedding = recognizer.embed_crop(decode_rgb(crop))
    if embedding is None:
        return f"face {index} of {where} was not embedded and its photo is no longer kept"
    return NegativeFace(embedding, crop, fmt, source, found.label, found.quality, found.rejected, found.box)


def _archived_face(
    db: sqlite3.Connection, directory: Path, event_id: str, seq: int, index: int
) -> _Archived | None:
    row = db.execute(
        "SELECT f.x1, f.y1, f.x2, f.y2, f.label, f.quality, f.rejected, f.embedding, f.model, f.crop"
        " FROM faces f"
        " JOIN snapshots s ON s.id = f.snapshot JOIN events e ON e.id = s.event"
        " WHERE e.event_id = ? AND s.seq = ? ORDER BY f.id LIMIT 1 OFFSET ?",
        (event_id, seq, index),
    ).fetchone()
    if row is None:
        return None
    x1, y1, x2, y2, label, quality, rejected, emb, model, crop = row
    return _Archived(
        (int(x1), int(y1), int(x2), int(y2)),
        None if label is None else str(label),
        None if quality is None else float(quality),
        None if rejected is None else str(rejected),
        None if emb is None else np.frombuffer(emb, np.float32),
        None if model is None else str(model),
        None if crop is None else bytes(crop),
        snapshot_path(db, directory, event_id, seq),
    )


def recut(recognizer: Recognizer, jpeg: bytes, box: Box) -> AnalyzedFace | None:
    """The face of the snapshot that overlaps `box` most (the archived one, found again)."""
    faces = recognizer.analyze(jpeg).faces
    best = max(faces, key=lambda f: _iou(f.box, box), default=None)
    return best if best is not None and _iou(best.box, box) > 0.5 else None


def _iou(a: Box, b: Box) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
