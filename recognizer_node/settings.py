"""The `[recognizer]` config section. Imports only pydantic, the stdlib and the contract (cheap)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator

from homesec.contract import ID_PATTERN
from homesec.settings import Section
from recognizer_node.http.settings import HttpSettings

DETECTOR_FILE = "face_detection_yunet_2023mar_dynamic.onnx"
EMBEDDER_FILE = "face_recognition_sface_2021dec_opt.onnx"


class ArchiveSettings(Section):
    """`[recognizer.archive]`: event history, face search and unknown-visitor ids (docs/search.md)."""

    enabled: bool = Field(True, description="Archive every processed snapshot (faces, embeddings, JPEG).")
    dir: Path | None = Field(None, description="Archive directory; default <data_dir>/archive.")
    max_age_days: float = Field(30.0, gt=0, description="Snapshots older than this are deleted.")
    max_mb: float = Field(
        2000.0, gt=0, description="Disk budget (JPEGs + face rows); the oldest snapshots go first."
    )
    keep_snapshots: bool = Field(True, description="Keep each snapshot JPEG (off: faces and times only).")
    prune_every: int = Field(
        100, ge=1, description="Retention runs every this many snapshots (and when full)."
    )
    visitors: bool = Field(True, description="Cluster recurring unknown faces into visitor ids.")
    visitor_threshold: float = Field(
        0.45,
        gt=-1,
        lt=1,
        description="Cosine similarity to a visitor's centroid to join it (docs/search.md).",
    )
    visitor_min_face_px: int = Field(
        40, ge=8, description="Unknown faces narrower than this get no visitor id (embeddings too noisy)."
    )

    def resolve_dir(self, data_dir: Path) -> Path:
        return self.dir if self.dir is not None else data_dir / "archive"


class RecognizerSettings(Section):
    instance: str = Field(
        "main",
        pattern=ID_PATTERN,
        description="Node instance id: the node is `recognizer/<instance>`.",
    )
    models_dir: Path | None = Field(
        None, description="Where `homesec models install` puts the ONNX models; default <data_dir>/models."
    )
    detector_model: Path = Field(
        Path(DETECTOR_FILE),
        description="YuNet-compatible ONNX detector (relative paths are inside models_dir).",
    )
    embedder_model: Path = Field(
        Path(EMBEDDER_FILE),
        description="SFace-compatible ONNX embedder, 112x112 RGB input (relative paths: inside models_dir).",
    )
    gallery_path: Path | None = Field(None, description="SQLite gallery; default <data_dir>/gallery.sqlite3.")
    threads: int = Field(2, ge=1, le=64, description="onnxruntime intra-op threads per model.")
    max_image_pixels: int = Field(
        40_000_000, ge=10_000, description="Larger images are refused (decompression-bomb guard)."
    )
    # detection
    det_max_side: int = Field(
        960, ge=160, description="Whole-frame detection pass: the frame's long side is reduced to this."
    )
    det_score_threshold: float = Field(
        0.6, gt=0, lt=1, description="Detector candidates below this score are dropped (OpenCV uses 0.9)."
    )
    nms_threshold: float = Field(0.3, gt=0, lt=1, description="IoU above which overlapping boxes are merged.")
    roi_max_side: int = Field(
        640, ge=160, description="The camera's motion box is detected again at up to this long side."
    )
    roi_max_upscale: float = Field(2.0, ge=1, le=4, description="Upscale limit for the motion-box pass.")
    refine: bool = Field(
        True, description="Re-detect each face on a full-resolution crop for precise landmarks."
    )
    # quality gates
    min_face_px: int = Field(28, ge=8, description="Faces narrower than this are not recognized.")
    dim_min_face_px: int = Field(
        38, ge=8, description="In a dim face (see dim_brightness) the size below which it is not recognized."
    )
    dim_brightness: float = Field(
        80.0, ge=0, le=255, description="A face whose mean grey level (0-255) is below this is dim."
    )
    enroll_min_face_px: int = Field(60, ge=8, description="Faces narrower than this are not enrolled.")
    min_det_score: float = Field(0.7, ge=0, le=1, description="Faces detected with less are not used.")
    min_sharpness: float = Field(
        1.0, ge=0, description="Contrast-normalised Laplacian variance of the aligned face; below: 'blurred'."
    )
    enroll_min_sharpness: float = Field(1.5, ge=0, description="The same gate for enrollment (stricter).")
    # matching
    match_threshold: float = Field(
        0.363, gt=-1, lt=1, description="Cosine similarity a face needs to be named (see docs/accuracy.md)."
    )
    match_margin: float = Field(
        0.05, ge=0, lt=1, description="Best label within this of the 2nd best label: ambiguous -> unknown."
    )
    match_method: Literal["max", "top2"] = Field(
        "max", description="Per-label score: best enrollment, or mean of the best two."
    )
    archive: ArchiveSettings = Field(
        default_factory=ArchiveSettings, description="Event history, face search and visitor ids."
    )
    http: HttpSettings = Field(
        default_factory=HttpSettings, description="The HTTP API: train, match, gallery, events."
    )
    alert_on_no_face: bool = Field(
        True,
        description="Also publish an alert when no usable face was seen (the notifier may still drop it).",
    )
    visit_window_s: float = Field(
        1.5,
        ge=0,
        le=60,
        description="A doubtful first verdict waits this long for the visit's other frames (docs/accuracy.md).",
    )
    visit_doubt_floor: float = Field(
        0.20,
        gt=-1,
        lt=1,
        description="An unknown face this similar to someone enrolled is doubtful: its alert waits.",
    )

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.enroll_min_face_px < self.min_face_px:
            raise ValueError("enroll_min_face_px must be >= min_face_px")
        return self

    def resolve_models_dir(self, data_dir: Path) -> Path:
        return self.models_dir if self.models_dir is not None else data_dir / "models"

    def resolve_gallery_path(self, data_dir: Path) -> Path:
        return self.gallery_path if self.gallery_path is not None else data_dir / "gallery.sqlite3"

    def model_path(self, model: Path, data_dir: Path) -> Path:
        return model if model.is_absolute() else self.resolve_models_dir(data_dir) / model
