"""The Recognizer facade: image bytes -> faces -> embeddings -> names, enrollment and annotation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from homesec.contract import ContractError, Face, Verdict, check_label
from recognizer_node import models
from recognizer_node.align import align_face, source_region
from recognizer_node.detection import Box, DetectionPlan, detect
from recognizer_node.gallery import Gallery
from recognizer_node.imageio import decode_rgb, encode_png, open_image
from recognizer_node.matching import match_embeddings, resembles
from recognizer_node.quality import (
    Gates,
    brightness,
    face_px,
    is_too_small,
    largest_face,
    quality_score,
    sharpness,
)
from recognizer_node.settings import RecognizerSettings
from recognizer_node.sface import SFace
from recognizer_node.yunet import YuNet

log = logging.getLogger(__name__)


@dataclass
class AnalyzedFace:
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in image pixels (after EXIF orientation)
    score: float
    landmarks: list[tuple[float, float]]  # right eye, left eye, nose, right and left mouth corner
    px: int
    sharpness: float
    quality: float
    rejected: str | None  # why the face is not used, or None
    crop: np.ndarray = field(repr=False)  # aligned (112, 112, 3) uint8 RGB
    embedding: np.ndarray | None = field(default=None, repr=False)  # None when rejected (and not forced)


@dataclass
class Analysis:
    width: int
    height: int
    faces: list[AnalyzedFace]
    timings_ms: dict[str, float]

    @property
    def usable(self) -> list[AnalyzedFace]:
        return [f for f in self.faces if f.rejected is None and f.embedding is not None]


@dataclass
class MatchedFace:
    face: AnalyzedFace
    label: str | None
    similarity: float | None
    closest: str | None
    ambiguous_with: str | None = None  # too close to call between `closest` and this label

    def to_contract(self) -> Face:
        f = self.face
        return Face(
            box=f.box,
            score=round(f.score, 4),
            label=self.label,
            similarity=self.similarity,
            closest=self.closest,
            ambiguous_with=self.ambiguous_with,
            quality=f.quality,
            rejected=f.rejected,
        )


@dataclass
class Recognition:
    analysis: Analysis
    faces: list[MatchedFace]
    verdict: Verdict

    @property
    def timings_ms(self) -> dict[str, float]:
        return self.analysis.timings_ms


@dataclass(frozen=True)
class EnrollResult:
    ok: bool
    reason: str | None = None
    enrollment_id: int | None = None
    faces_found: int = 0
    quality: float | None = None
    label: str | None = None
    looks_like: str | None = None  # refused: the other label the face already matches
    looks_like_similarity: float | None = None
    already_enrolled: bool = False  # the same face was enrolled under the label: nothing added


@dataclass(frozen=True)
class EnrollCrop:
    """The aligned face an enrollment keeps (encoded), so a later model can re-embed it."""

    data: bytes
    format: str  # "png" or "jpeg"
    quality: float | None


def verdict_of(faces: list[MatchedFace]) -> Verdict:
    """known only when every usable face is named; unknown if any usable face is not; with no usable
    face, too_small when a face was seen but too small to judge (someone is there, not a stranger),
    else no_face."""
    usable = [m for m in faces if m.face.rejected is None]
    if not usable:
        small = any(is_too_small(m.face.rejected) for m in faces)
        return Verdict.TOO_SMALL if small else Verdict.NO_FACE
    return Verdict.KNOWN if all(m.label is not None for m in usable) else Verdict.UNKNOWN


class Recognizer:
    """Loads (and verifies) the models once; `analyze`, `match`, `enroll`, `annotate` are then cheap."""

    def __init__(self, settings: RecognizerSettings, data_dir: Path) -> None:
        self.settings = s = settings
        self.models_dir = s.resolve_models_dir(data_dir)
        det_path = s.model_path(s.detector_model, data_dir)
        emb_path = s.model_path(s.embedder_model, data_dir)
        hashes = models.verify_models([det_path, emb_path], self.models_dir)
        # the gallery keys embeddings by the exact embedder; results name both models readably
        same_as = models.identity(emb_path, hashes[emb_path], self.models_dir)
        self.embedder_id = f"{_short_name(emb_path)}@{same_as[:12]}"
        self.model_name = f"{_short_name(det_path)}+{_short_name(emb_path)}"
        self.detector = YuNet(det_path, s.threads, s.det_score_threshold, s.nms_threshold)
        self.embedder = SFace(emb_path, s.threads)
        self.plan = DetectionPlan(
            s.det_max_side, s.roi_max_side, s.roi_max_upscale, s.refine, s.nms_threshold
        )
        self.gates = Gates(
            s.min_face_px, s.min_det_score, s.min_sharpness, s.dim_min_face_px, s.dim_brightness
        )
        # one thread decodes a snapshot's full pixels while the detector looks at its reduced copy
        self.decoder: ThreadPoolExecutor | None = ThreadPoolExecutor(1, thread_name_prefix="decode")
        # the faces of a frame are refined and embedded two at a time (the models gain little from a
        # second onnxruntime thread: bench/recognizer.py --in-order, docs/performance.md)
        self.workers: ThreadPoolExecutor | None = ThreadPoolExecutor(2, thread_name_prefix="face")

    # ----------------------------------------------------------------------------------- analysis

    def analyze(
        self,
        data: bytes,
        motion_box: Box | None = None,
        *,
        box_space: tuple[int, int] | None = None,
        embed_all: bool = False,
    ) -> Analysis:
        """Detect, align, gate and embed every face. `embed_all` embeds rejected faces too.

        `motion_box` is in image pixels, or in a `box_space` (width, height) of the camera's own
        (the snapshot's declared size), scaled when the JPEG turns out to be another size.
        """
        t0 = time.perf_counter()
        image = open_image(data, self.settings.max_image_pixels)
        if motion_box is not None and box_space is not None:
            motion_box = rescale_box(motion_box, box_space, (image.width, image.height))
        dets, timings = detect(image, self.detector, self.plan, motion_box, self.decoder, self.workers)
        t1 = time.perf_counter()
        faces = []
        for box, lms, score in zip(dets.boxes, dets.landmarks, dets.scores, strict=True):
            # only the region the aligned face samples from is converted from Pillow
            x1, y1, x2, y2 = source_region(lms, image.width, image.height)
            crop = align_face(image.region((x1, y1, x2, y2)), lms - np.array([x1, y1], np.float32))
            px, sharp, det_score, bright = face_px(box), sharpness(crop), float(score), brightness(crop)
            faces.append(
                AnalyzedFace(
                    box=_int_box(box, image.width, image.height),
                    score=det_score,
                    landmarks=[(round(float(x), 1), round(float(y), 1)) for x, y in lms],
                    px=px,
                    sharpness=round(sharp, 1),
                    quality=quality_score(px, det_score, sharp),
                    rejected=self.gates.reject_reason(px, det_score, sharp, bright),
                    crop=crop,
                )
            )
        t2 = time.perf_counter()
        todo = [f for f in faces if f.rejected is None or embed_all]
        embeddings = self.embedder.embed([f.crop for f in todo], workers=self.workers)
        for f, embedding in zip(todo, embeddings, strict=True):
            f.embedding = embedding
        t3 = time.perf_counter()
        timings.update(align=(t2 - t1) * 1000, embed=(t3 - t2) * 1000, total=(t3 - t0) * 1000)
        return Analysis(image.width, image.height, faces, {k: round(v, 2) for k, v in timings.items()})

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        return self.embedder(crop)

    # ----------------------------------------------------------------------------------- matching

    def match(self, analysis: Analysis, gallery: Gallery) -> Recognition:
        t0 = time.perf_counter()
        s = self.settings
        usable = analysis.usable
        matrix = gallery.matrix(self.embedder_id)
        embeddings = np.stack([f.embedding for f in usable if f.embedding is not None]) if usable else None
        matches = (
            match_embeddings(embeddings, matrix, s.match_threshold, s.match_margin, s.match_method)
            if embeddings is not None
            else []
        )
        by_face = {id(f): m for f, m in zip(usable, matches, strict=True)}
        faces = []
        for f in analysis.faces:
            m = by_face.get(id(f))
            faces.append(
                MatchedFace(f, m.label, m.similarity, m.closest, m.runner_up)
                if m
                else MatchedFace(f, None, None, None)
            )
        analysis.timings_ms["match"] = round((time.perf_counter() - t0) * 1000, 2)
        return Recognition(analysis, faces, verdict_of(faces))

    def recognize(
        self,
        data: bytes,
        gallery: Gallery,
        motion_box: Box | None = None,
        box_space: tuple[int, int] | None = None,
    ) -> Recognition:
        return self.match(self.analyze(data, motion_box, box_space=box_space), gallery)

    # --------------------------------------------------------------------------------- enrollment

    def pick_for_enrollment(
        self, analysis: Analysis, largest: bool
    ) -> tuple[AnalyzedFace | None, str | None]:
        """The face to enroll, or the reason for refusing."""
        faces = analysis.faces
        if not faces:
            return None, "no face found"
        s = self.settings
        enroll_gates = Gates(s.enroll_min_face_px, s.min_det_score, s.enroll_min_sharpness)
        reasons = [enroll_gates.reject_reason(f.px, f.score, f.sharpness) for f in faces]
        usable = [f for f, r in zip(faces, reasons, strict=True) if r is None]
        if largest:
            face = largest_face(faces)
            return (face, None) if face in usable else (None, reasons[faces.index(face)])
        if len(usable) == 1:
            return usable[0], None
        if len(usable) > 1:
            return None, f"{len(usable)} faces found; send a photo with one face or ask for the largest"
        if len(faces) == 1:
            return None, reasons[0]
        best = largest_face(faces)
        return None, f"{len(faces)} faces found, none usable: {reasons[faces.index(best)]}"

    def enroll(
        self,
        data: bytes,
        label: str,
        gallery: Gallery,
        *,
        largest: bool = False,
        source: str = "api",
        force: bool = False,
        request_key: str | None = None,
        same_within: float | None = None,
    ) -> EnrollResult:
        """Enroll exactly one usable face (or the largest when asked); refusals carry the reason.
        A `request_key` (a training request) that enrolled before gets its enrollment again, and so does
        a face `same_within` like an enrollment of the label (`Gallery.add_once`).

        A face that already matches another label is refused unless `force`d: enrolled, it would make
        that person ambiguous between two labels, so unknown at every sighting.
        """
        label = check_label(label)
        analysis = self.analyze(data)
        face, reason = self.pick_for_enrollment(analysis, largest)
        found = len(analysis.faces)
        if face is None:
            return EnrollResult(False, reason, faces_found=found, label=label)
        embedding = face.embedding if face.embedding is not None else self.embedder(face.crop)
        crop = EnrollCrop(encode_png(face.crop), "png", face.quality)
        return self.enroll_embedding(
            embedding, crop, label, gallery, source=source, force=force, found=found, request_key=request_key,
            same_within=same_within,
        )  # fmt: skip

    def enroll_embedding(
        self,
        embedding: np.ndarray,
        crop: EnrollCrop,
        label: str,
        gallery: Gallery,
        *,
        source: str,
        force: bool = False,
        found: int = 1,
        request_key: str | None = None,
        same_within: float | None = None,
    ) -> EnrollResult:
        """Enroll a face already found and embedded (a photo's, or an archived one), unless it already
        matches another label and is not `force`d."""
        s = self.settings
        matrix = gallery.matrix(self.embedder_id)
        other = resembles(embedding, matrix, label, s.match_threshold, s.match_margin, s.match_method)
        if other is not None and not force:
            name, score = other
            why = f"looks like {name} ({score:.2f}): add it to {name}, or force"
            return EnrollResult(False, why, None, found, crop.quality, label, name, score)
        enrollment_id, already = gallery.add_once(
            label, embedding, self.embedder_id, crop.data, crop.format, crop.quality, source, request_key,
            same_within,
        )  # fmt: skip
        if already:
            log.info("%s: already enrolled as #%d, nothing added (%s)", label, enrollment_id, source)
        else:
            log.info("enrolled %s as #%d (quality %s, %s)", label, enrollment_id, crop.quality, source)
        return EnrollResult(True, None, enrollment_id, found, crop.quality, label, already_enrolled=already)

    # --------------------------------------------------------------------------------- annotation

    def annotate(self, data: bytes, faces: Sequence[Face | MatchedFace]) -> bytes:
        """JPEG of the image with each face boxed: green named, red unknown, grey not usable."""
        # imported here: Pillow's drawing and fonts cost a `homesec faces` run ~50 ms and are not used
        from recognizer_node.annotate import draw_marks, drawable, mark_for

        contract_faces = [f.to_contract() if isinstance(f, MatchedFace) else f for f in faces]
        shown = [f.name if f.name and drawable(f.name) else f.label for f in contract_faces]  # else boxes
        marks = [
            mark_for(n, f.similarity, f.rejected, f.box) for n, f in zip(shown, contract_faces, strict=True)
        ]
        return draw_marks(data, marks, max_pixels=self.settings.max_image_pixels)

    def reembed_gallery(self, gallery: Gallery, on_each: Callable[[], None] | None = None) -> int:
        """Re-embed enrollments made with another model from their stored crops (`on_each` after each:
        a progress bar)."""

        def embed(crop: bytes, _fmt: str) -> np.ndarray:
            embedding = self.embedder(decode_rgb(crop))
            if on_each is not None:
                on_each()
            return embedding

        return gallery.reembed(self.embedder_id, embed)


class NoFaceError(ContractError):
    """The query image has no face."""


def query_face(recognizer: Recognizer, data: bytes) -> AnalyzedFace:
    """The largest face of a search's query image, embedded even if it would not pass the quality gates."""
    faces = recognizer.analyze(data, embed_all=True).faces
    if not faces:
        raise NoFaceError("no face found in the query image")
    return largest_face(faces)


def rescale_box(box: Box, space: tuple[int, int], size: tuple[int, int]) -> Box:
    """A box given in the pixels of a (width, height) `space`, in the pixels of an image of `size`."""
    if space == size:
        return box
    sx, sy = size[0] / space[0], size[1] / space[1]
    return round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)


def _short_name(path: Path) -> str:
    """face_detection_yunet_2023mar_dynamic.onnx -> yunet-2023mar (the run-time copies' suffixes dropped)"""
    stem = path.stem.removeprefix("face_detection_").removeprefix("face_recognition_")
    return stem.removesuffix("_dynamic").removesuffix("_opt").replace("_", "-")


def _int_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)
