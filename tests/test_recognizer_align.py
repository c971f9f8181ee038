"""Alignment maths on small arrays: Umeyama similarity, bilinear warp, box reduction."""

from __future__ import annotations

import numpy as np
import pytest

from recognizer_node.align import (
    ARCFACE_112,
    align_face,
    alignment_matrix,
    box_reduce,
    invert_affine,
    source_region,
    transform_points,
    umeyama,
    warp_affine,
)


def similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def naive_warp(image: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """Reference: per-pixel inverse mapping with explicit zero border."""
    inv = invert_affine(matrix)
    h, w = image.shape[:2]
    out = np.zeros((height, width), np.float64)

    def px(y: int, x: int) -> float:
        return float(image[y, x]) if 0 <= x < w and 0 <= y < h else 0.0

    for v in range(height):
        for u in range(width):
            x = inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]
            y = inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            fx, fy = x - x0, y - y0
            top = px(y0, x0) * (1 - fx) + px(y0, x0 + 1) * fx
            bottom = px(y0 + 1, x0) * (1 - fx) + px(y0 + 1, x0 + 1) * fx
            out[v, u] = top * (1 - fy) + bottom * fy
    return out


def test_umeyama_recovers_a_known_similarity() -> None:
    truth = similarity(1.7, 23.0, 5.0, -3.0)
    src = np.array([[0, 0], [10, 0], [0, 7], [4, 4], [9, 8]], float)
    dst = transform_points(truth, src)
    np.testing.assert_allclose(umeyama(src, dst), truth, atol=1e-9)


def test_umeyama_never_reflects() -> None:
    mirrored = ARCFACE_112 * [-1, 1]  # only a reflection maps the template onto this exactly
    m = umeyama(ARCFACE_112, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_umeyama_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


def test_alignment_matrix_maps_the_template_onto_itself() -> None:
    np.testing.assert_allclose(alignment_matrix(ARCFACE_112), [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_warp_identity_and_translation() -> None:
    img = np.arange(30, dtype=np.float32).reshape(5, 6)
    np.testing.assert_allclose(warp_affine(img, similarity(1, 0, 0, 0), (6, 5)), img)
    shifted = warp_affine(img, similarity(1, 0, 1, 0), (6, 5))  # output(u) = input(u - 1)
    np.testing.assert_allclose(shifted[:, 1:], img[:, :-1])
    np.testing.assert_allclose(shifted[:, 0], 0)  # outside the source: border value 0


@pytest.mark.parametrize("params", [(0.7, 30, 2.5, -1.2), (2.3, -75, -3.0, 4.4), (1.0, 180, 9.0, 8.0)])
def test_warp_matches_the_reference_bilinear(params: tuple[float, float, float, float]) -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (9, 11)).astype(np.float32)
    m = similarity(*params)
    np.testing.assert_allclose(warp_affine(img, m, (13, 10)), naive_warp(img, m, 13, 10), atol=1e-3)


def test_warp_keeps_channels() -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 1] = 200
    out = warp_affine(img, similarity(1, 0, 0, 0), (8, 8))
    assert out.shape == (8, 8, 3)
    assert out[..., 1].min() == 200 and out[..., 0].max() == 0


def test_warp_far_outside_the_image_is_all_border() -> None:
    img = np.full((4, 4), 9.0, np.float32)
    assert not warp_affine(img, similarity(1, 0, 1000, 1000), (5, 5)).any()


def test_box_reduce_averages_blocks() -> None:
    img = np.arange(36, dtype=np.float32).reshape(6, 6)
    out = box_reduce(img, 3)
    assert out.shape == (2, 2)
    assert out[0, 0] == pytest.approx(img[:3, :3].mean())
    assert out[1, 1] == pytest.approx(img[3:, 3:].mean())


def test_align_face_puts_the_landmarks_on_the_template() -> None:
    # draw 5 bright dots at the landmark positions of a face 3x the template size, rotated
    m = similarity(3.0, 20, 40, 10)
    points = transform_points(m, ARCFACE_112)
    img = np.zeros((460, 460), np.uint8)
    for x, y in np.rint(points).astype(int):
        img[y - 4 : y + 5, x - 4 : x + 5] = 255
    aligned = align_face(img, points)  # a 3x face: box-reduced first, then warped
    assert aligned.shape == (112, 112)
    for x, y in np.rint(ARCFACE_112).astype(int):
        assert aligned[y, x] > 150
    assert aligned[5, 5] == 0


def test_aligning_from_the_source_region_equals_aligning_from_the_whole_image() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (300, 400, 3)).astype(np.uint8)
    points = transform_points(similarity(1.4, -12, 150, 60), ARCFACE_112)
    x1, y1, x2, y2 = source_region(points, 400, 300)
    assert 0 <= x1 < x2 <= 400 and 0 <= y1 < y2 <= 300 and (x2 - x1) < 400
    np.testing.assert_array_equal(align_face(img[y1:y2, x1:x2], points - [x1, y1]), align_face(img, points))
    edge = transform_points(similarity(1.4, 0, -60, -40), ARCFACE_112)  # partly outside the image
    x1, y1, x2, y2 = source_region(edge, 400, 300)
    assert (x1, y1) == (0, 0)
    np.testing.assert_array_equal(align_face(img[y1:y2, x1:x2], edge - [x1, y1]), align_face(img, edge))
