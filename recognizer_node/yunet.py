"""YuNet face detector: decoding and NMS in numpy, as OpenCV's FaceDetectorYN (2023mar model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recognizer_node.inference import OnnxModel

STRIDES = (8, 16, 32)
DIVISOR = 32  # the input is padded (bottom/right, zeros) to multiples of this


@dataclass(frozen=True)
class Detections:
    """N faces: boxes (N, 4) x1, y1, x2, y2; landmarks (N, 5, 2); scores (N,). Float32 pixels."""

    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray

    @staticmethod
    def empty() -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, np.float32)
        )

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, idx: np.ndarray | list[int]) -> Detections:
        i = np.asarray(idx, dtype=np.int64)
        return Detections(self.boxes[i], self.landmarks[i], self.scores[i])

    def mapped(self, scale_x: float, scale_y: float, dx: float = 0.0, dy: float = 0.0) -> Detections:
        """Coordinates divided by the scale the detector saw, then shifted by the crop's origin."""
        scale = np.array([scale_x, scale_y], np.float32)
        shift = np.array([dx, dy], np.float32)
        boxes = (self.boxes.reshape(-1, 2, 2) / scale + shift).reshape(-1, 4)
        return Detections(boxes, self.landmarks / scale + shift, self.scores)

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        return Detections(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )


def padded_size(width: int, height: int) -> tuple[int, int]:
    return -(-width // DIVISOR) * DIVISOR, -(-height // DIVISOR) * DIVISOR


def decode(outputs: dict[str, np.ndarray], pad_w: int, pad_h: int, score_threshold: float) -> np.ndarray:
    """Raw outputs -> (N, 15) rows: x, y, w, h, 5 landmarks (x, y), score; as FaceDetectorYN."""
    rows = []
    for stride in STRIDES:
        cols, nrows = pad_w // stride, pad_h // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.nonzero(score >= score_threshold)[0]
        if keep.size == 0:
            continue
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        kps = outputs[f"kps_{stride}"].reshape(-1, 10)[keep]
        assert cols * nrows == cls.size, "output size does not match the padded input"
        c = (keep % cols).astype(np.float32)
        r = (keep // cols).astype(np.float32)
        cx = (c + bbox[:, 0]) * stride
        cy = (r + bbox[:, 1]) * stride
        w = np.exp(bbox[:, 2]) * stride
        h = np.exp(bbox[:, 3]) * stride
        lm = kps.reshape(-1, 5, 2)
        lm_x = (lm[:, :, 0] + c[:, None]) * stride
        lm_y = (lm[:, :, 1] + r[:, None]) * stride
        landmarks = np.stack([lm_x, lm_y], axis=2).reshape(-1, 10)
        rows.append(np.column_stack([cx - w / 2, cy - h / 2, w, h, landmarks, score[keep]]))
    if not rows:
        return np.zeros((0, 15), np.float32)
    return np.concatenate(rows).astype(np.float32)


def nms(
    xywh: np.ndarray, scores: np.ndarray, score_threshold: float, iou_threshold: float, top_k: int = 5000
) -> list[int]:
    """Greedy NMS as cv::dnn::NMSBoxes on integer rects (truncated like C++'s int())."""
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > score_threshold][:top_k]
    rects = np.trunc(xywh).astype(np.int64)
    x1, y1 = rects[:, 0], rects[:, 1]
    x2, y2 = x1 + rects[:, 2], y1 + rects[:, 3]
    area = rects[:, 2] * rects[:, 3]
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.asarray(kept)
            iw = np.clip(np.minimum(x2[i], x2[k]) - np.maximum(x1[i], x1[k]), 0, None)
            ih = np.clip(np.minimum(y2[i], y2[k]) - np.maximum(y1[i], y1[k]), 0, None)
            inter = iw * ih
            union = area[i] + area[k] - inter
            iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
            if np.any(iou > iou_threshold):
                continue
        kept.append(int(i))
    return kept


def rows_to_detections(rows: np.ndarray) -> Detections:
    boxes = np.column_stack([rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2], rows[:, 1] + rows[:, 3]])
    return Detections(
        boxes.astype(np.float32), rows[:, 4:14].reshape(-1, 5, 2).astype(np.float32), rows[:, 14].copy()
    )


def postprocess_rows(rows: np.ndarray, score_threshold: float, nms_threshold: float) -> Detections:
    if len(rows) > 1:  # OpenCV runs NMS only when there is more than one candidate
        rows = rows[nms(rows[:, :4], rows[:, 14], score_threshold, nms_threshold)]
    return rows_to_detections(rows)


def merge(dets: Detections, nms_threshold: float) -> Detections:
    """NMS across detection passes (boxes already in the same coordinates)."""
    if len(dets) < 2:
        return dets
    xywh = np.column_stack([dets.boxes[:, :2], dets.boxes[:, 2:] - dets.boxes[:, :2]])
    return dets.take(nms(xywh, dets.scores, -1.0, nms_threshold))


class YuNet(OnnxModel[np.ndarray, Detections]):
    """Input: (H, W, 3) uint8 RGB; output: faces in that image's pixels."""

    def __init__(
        self, path: Path, threads: int = 1, score_threshold: float = 0.6, nms_threshold: float = 0.3
    ) -> None:
        super().__init__(path, threads)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold

    def preprocess(self, item: np.ndarray) -> np.ndarray:
        h, w = item.shape[:2]
        pad_w, pad_h = padded_size(w, h)
        tensor = np.zeros((1, 3, pad_h, pad_w), np.float32)
        tensor[0, :, :h, :w] = item[:, :, ::-1].transpose(2, 0, 1)  # RGB -> BGR planes, 0..255
        return tensor

    def postprocess(self, outputs: dict[str, np.ndarray], item: np.ndarray) -> Detections:
        pad_w, pad_h = padded_size(item.shape[1], item.shape[0])
        rows = decode(outputs, pad_w, pad_h, self.score_threshold)
        return postprocess_rows(rows, self.score_threshold, self.nms_threshold)
