"""Where to run the detector: the whole frame reduced, the camera's motion box, and each face again.

A 40-80 px face in a 1920x1080 frame shrinks to 13-27 px in a 640 px copy, where YuNet misses some and
places the landmarks of the rest poorly. So:
1. the whole frame at `det_max_side` (960: faces keep half their width, at a quarter of the full cost);
2. the motion box the camera reports, at up to `roi_max_side` and `roi_max_upscale`x, when that sees
   the region at a finer scale than pass 1;
3. every face found is detected again on a full-resolution crop where it is about 112 px wide, which
   gives landmarks (hence the alignment and the embedding) the precision of the full frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from recognizer_node.imageio import DecodedImage
from recognizer_node.yunet import Detections, merge

Detector = Callable[[np.ndarray], Detections]
Box = tuple[int, int, int, int]

REFINE_FACE_PX = 112.0  # face width the refinement crop is scaled to (the aligned size)
REFINE_CONTEXT = 2.2  # crop side, in face widths: YuNet needs some context around a face


@dataclass(frozen=True)
class DetectionPlan:
    det_max_side: int = 960
    roi_max_side: int = 640
    roi_max_upscale: float = 2.0
    refine: bool = True
    nms_threshold: float = 0.3


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def clamp_box(box: Box | tuple[float, ...], width: int, height: int) -> Box | None:
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    return (x1, y1, x2, y2) if x2 - x1 >= 8 and y2 - y1 >= 8 else None


def region(image: DecodedImage, detector: Detector, box: Box, scale: float) -> Detections:
    """Detect inside `box` (full-resolution pixels) seen at `scale`."""
    x1, y1, x2, y2 = box
    w, h = _scaled(x2 - x1, y2 - y1, scale)
    return detector(image.region(box, w, h)).mapped(w / (x2 - x1), h / (y2 - y1), x1, y1)


def motion_region(
    image: DecodedImage, detector: Detector, motion_box: Box, plan: DetectionPlan, frame_scale: float
) -> Detections:
    x1, y1, x2, y2 = motion_box
    pad_x, pad_y = 0.1 * (x2 - x1), 0.1 * (y2 - y1)  # a face on the box's edge still needs context
    box = clamp_box((x1 - pad_x, y1 - pad_y, x2 + pad_x, y2 + pad_y), image.width, image.height)
    if box is None:
        return Detections.empty()
    scale = min(plan.roi_max_upscale, plan.roi_max_side / max(box[2] - box[0], box[3] - box[1]))
    if scale <= frame_scale * 1.25:  # no finer than the whole-frame pass: nothing to gain
        return Detections.empty()
    return region(image, detector, box, scale)


def refine(
    image: DecodedImage, detector: Detector, dets: Detections, workers: Executor | None = None
) -> Detections:
    """Re-detect each face on a full-resolution crop; keep the original when the crop finds nothing.
    With `workers`, faces are refined in parallel (the image's pixels must be decoded already)."""

    def one(i: int) -> Detections:
        x1, y1, x2, y2 = (float(v) for v in dets.boxes[i])
        size = max(x2 - x1, y2 - y1)
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, REFINE_CONTEXT * size / 2
        box = clamp_box((cx - half, cy - half, cx + half, cy + half), image.width, image.height)
        found = region(image, detector, box, REFINE_FACE_PX / size) if box else Detections.empty()
        best = _best_overlap(found, dets.boxes[i])
        if best is None:
            return dets.take([i])
        refined = found.take([best])
        # keep the stronger score: a tight crop can score a face lower than its context did
        return Detections(
            refined.boxes, refined.landmarks, np.maximum(refined.scores, dets.scores[i : i + 1])
        )

    indices = range(len(dets))
    return Detections.concat(
        list(workers.map(one, indices) if workers and len(dets) > 1 else map(one, indices))
    )


def _best_overlap(found: Detections, box: np.ndarray, min_iou: float = 0.4) -> int | None:
    if not len(found):
        return None
    ix = np.clip(np.minimum(found.boxes[:, 2], box[2]) - np.maximum(found.boxes[:, 0], box[0]), 0, None)
    iy = np.clip(np.minimum(found.boxes[:, 3], box[3]) - np.maximum(found.boxes[:, 1], box[1]), 0, None)
    inter = ix * iy
    areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
    iou = inter / (areas + (box[2] - box[0]) * (box[3] - box[1]) - inter)
    best = int(np.argmax(iou))
    return best if iou[best] >= min_iou else None


def detect(
    image: DecodedImage,
    detector: Detector,
    plan: DetectionPlan,
    motion_box: Box | None = None,
    pool: Executor | None = None,
    workers: Executor | None = None,
) -> tuple[Detections, dict[str, float]]:
    """All faces in full-resolution pixels, with per-step timings in ms. With a `pool`, the full
    pixels that the motion box and the refinement need are decoded there during the first pass; with
    `workers`, the faces are refined in parallel."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + (now - clock) * 1000
        clock = now

    frame_scale = min(1.0, plan.det_max_side / max(image.width, image.height))
    w, h = _scaled(image.width, image.height, frame_scale)
    if pool is not None and (motion_box is not None or plan.refine) and image.draftable(w):
        image.decode_on(pool)
    small = image.reduced(w, h)
    lap("decode")
    dets = detector(small).mapped(w / image.width, h / image.height)
    lap("detect")
    if motion_box is None and not (plan.refine and len(dets)):
        return dets, timings
    image.image()
    lap("decode_full")
    if motion_box is not None:
        roi = motion_region(image, detector, motion_box, plan, frame_scale)
        dets = merge(Detections.concat([dets, roi]), plan.nms_threshold)
        lap("detect_roi")
    if plan.refine and len(dets):
        # two may refine onto one face
        dets = merge(refine(image, detector, dets, workers), plan.nms_threshold)
        lap("refine")
    return dets, timings
