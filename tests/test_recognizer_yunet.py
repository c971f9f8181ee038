"""YuNet decoding and NMS on hand-made outputs (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from recognizer_node.yunet import STRIDES, Detections, decode, merge, nms, padded_size, postprocess_rows


def empty_outputs(pad_w: int, pad_h: int) -> dict[str, np.ndarray]:
    out = {}
    for s in STRIDES:
        n = (pad_w // s) * (pad_h // s)
        out[f"cls_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"obj_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"bbox_{s}"] = np.zeros((1, n, 4), np.float32)
        out[f"kps_{s}"] = np.zeros((1, n, 10), np.float32)
    return out


def test_padded_size_rounds_up_to_32() -> None:
    assert padded_size(640, 480) == (640, 480)
    assert padded_size(960, 540) == (960, 544)
    assert padded_size(1, 33) == (32, 64)


def test_decode_one_anchor_like_opencv() -> None:
    out = empty_outputs(64, 32)  # stride 8: 8 columns x 4 rows
    idx = 1 * 8 + 3  # row 1, column 3
    out["cls_8"][0, idx, 0] = 0.81
    out["obj_8"][0, idx, 0] = 1.2  # clamped to 1
    out["bbox_8"][0, idx] = [0.5, 0.25, np.log(2.0), np.log(3.0)]
    out["kps_8"][0, idx] = [0, 0, 1, 0, 0.5, 0.5, 0, 1, 1, 1]
    rows = decode(out, 64, 32, score_threshold=0.5)
    assert rows.shape == (1, 15)
    x, y, w, h = rows[0, :4]
    # centre ((3 + 0.5) * 8, (1 + 0.25) * 8) = (28, 10); size (2 * 8, 3 * 8) = (16, 24)
    assert (x, y, w, h) == pytest.approx((28 - 8, 10 - 12, 16, 24))
    assert rows[0, 4:6] == pytest.approx((24, 8))  # landmark (0 + 3) * 8, (0 + 1) * 8
    assert rows[0, 6:8] == pytest.approx((32, 8))
    assert rows[0, 14] == pytest.approx(np.sqrt(0.81 * 1.0))


def test_decode_drops_low_scores() -> None:
    out = empty_outputs(32, 32)
    out["cls_32"][0, 0, 0] = 0.5
    out["obj_32"][0, 0, 0] = 0.5  # sqrt(0.25) = 0.5
    assert len(decode(out, 32, 32, score_threshold=0.6)) == 0
    assert len(decode(out, 32, 32, score_threshold=0.5)) == 1


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    xywh = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    assert nms(xywh, scores, 0.5, 0.3) == [1, 2]
    assert nms(xywh, scores, 0.75, 0.3) == [1]  # strictly above the score threshold
    assert nms(xywh, scores, 0.5, 0.99) == [1, 0, 2]  # nothing overlaps that much


def test_postprocess_and_merge() -> None:
    rows = np.zeros((2, 15), np.float32)
    rows[:, :4] = [[10, 10, 20, 20], [11, 11, 20, 20]]
    rows[:, 14] = [0.9, 0.95]
    dets = postprocess_rows(rows, 0.6, 0.3)
    assert len(dets) == 1 and dets.scores[0] == pytest.approx(0.95)
    assert dets.boxes[0] == pytest.approx([11, 11, 31, 31])
    both = Detections.concat([dets, dets.mapped(1.0, 1.0, 100, 0)])
    assert len(merge(both, 0.3)) == 2
    assert len(merge(Detections.concat([dets, dets]), 0.3)) == 1


def test_mapped_undoes_the_detection_scale_and_crop() -> None:
    d = Detections(
        np.array([[10, 20, 30, 40]], np.float32), np.full((1, 5, 2), 10, np.float32), np.ones(1, np.float32)
    )
    m = d.mapped(0.5, 0.25, dx=100, dy=200)
    assert m.boxes[0] == pytest.approx([120, 280, 160, 360])
    assert m.landmarks[0, 0] == pytest.approx([120, 240])
