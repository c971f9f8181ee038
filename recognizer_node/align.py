"""Face alignment in pure numpy: a similarity transform of 5 landmarks onto the ArcFace template.

Landmark order (YuNet's): right eye, left eye (from the viewer: the left and right eye in the image),
nose tip, right mouth corner, left mouth corner.
"""

from __future__ import annotations

import numpy as np

ALIGNED_SIZE = 112
# ArcFace / InsightFace 112x112 template; SFace was trained on faces aligned to it.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, translation; no reflection) best mapping src onto dst.

    Least squares, Umeyama (1991), as skimage's SimilarityTransform.estimate.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (N>=2, 2) point arrays, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:  # the best fit would be a reflection: flip the weakest axis instead
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    var_src = src_c.var(axis=0).sum()
    scale = float((s * d).sum() / var_src) if var_src > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    lin_inv = np.linalg.inv(matrix[:, :2])
    out = np.empty((2, 3))
    out[:, :2] = lin_inv
    out[:, 2] = -lin_inv @ matrix[:, 2]
    return out


def transform_points(matrix: np.ndarray, points: np.ndarray | list[list[float]]) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp_affine(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear warp of `image` (H, W[, C]) by the forward 2x3 `matrix` into (height, width) = size[::-1].

    Output pixel (u, v) samples the source at inverse(matrix) @ (u, v, 1); pixels outside the source
    count as 0, as OpenCV's warpAffine with BORDER_CONSTANT. Returns float32.
    """
    width, height = size
    src = image if image.ndim == 3 else image[:, :, None]
    h, w, channels = src.shape
    inv = invert_affine(matrix)
    u = np.arange(width, dtype=np.float64)[None, :]
    v = np.arange(height, dtype=np.float64)[:, None]
    # beyond one pixel outside the image every tap is border (0): clamping there changes nothing
    xs = np.clip(inv[0, 0] * u + inv[0, 1] * v + inv[0, 2], -1, w)
    ys = np.clip(inv[1, 0] * u + inv[1, 1] * v + inv[1, 2], -1, h)
    # copy the covered region into a zero-bordered patch, so every tap is in bounds
    rx1, ry1 = int(np.floor(xs.min())) - 1, int(np.floor(ys.min())) - 1
    rx2, ry2 = int(np.floor(xs.max())) + 2, int(np.floor(ys.max())) + 2
    patch = np.zeros((ry2 - ry1, rx2 - rx1, channels), np.float32)
    ix1, iy1, ix2, iy2 = max(rx1, 0), max(ry1, 0), min(rx2, w), min(ry2, h)
    if ix2 > ix1 and iy2 > iy1:
        patch[iy1 - ry1 : iy2 - ry1, ix1 - rx1 : ix2 - rx1] = src[iy1:iy2, ix1:ix2]
    xs, ys = xs - rx1, ys - ry1
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx = (xs - x0).astype(np.float32)[..., None]
    fy = (ys - y0).astype(np.float32)[..., None]
    pw = patch.shape[1]
    flat = patch.reshape(-1, channels)
    idx = y0 * pw + x0
    top = flat[idx] * (1 - fx) + flat[idx + 1] * fx
    bottom = flat[idx + pw] * (1 - fx) + flat[idx + pw + 1] * fx
    out = top * (1 - fy) + bottom * fy
    return out if image.ndim == 3 else out[:, :, 0]


def alignment_matrix(landmarks: np.ndarray) -> np.ndarray:
    """Forward transform from image pixels to the 112x112 template."""
    return umeyama(np.asarray(landmarks, dtype=np.float64).reshape(5, 2), ARCFACE_112)


def source_region(landmarks: np.ndarray, width: int, height: int, pad: int = 2) -> tuple[int, int, int, int]:
    """The part (x1, y1, x2, y2) of a width x height image that the aligned face is sampled from."""
    out: list[list[float]] = [[0, 0], [ALIGNED_SIZE, 0], [0, ALIGNED_SIZE], [ALIGNED_SIZE, ALIGNED_SIZE]]
    corners = transform_points(invert_affine(alignment_matrix(landmarks)), out)
    x1, y1 = (int(v) - pad for v in np.floor(corners.min(axis=0)))
    x2, y2 = (int(v) + pad for v in np.ceil(corners.max(axis=0)))
    x1, x2 = min(max(x1, 0), width - 1), min(max(x2, 1), width)
    y1, y2 = min(max(y1, 0), height - 1), min(max(y2, 1), height)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def box_reduce(image: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks (the trailing partial rows/columns are dropped)."""
    h, w = image.shape[0] // k, image.shape[1] // k
    total = np.zeros((h, w, *image.shape[2:]), np.float32)
    for dy in range(k):
        for dx in range(k):
            total += image[dy : dy + h * k : k, dx : dx + w * k : k]
    return total / (k * k)


def align_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(112, 112, C) uint8 face aligned to the ArcFace template.

    Bilinear sampling aliases when shrinking by more than 2x, so a large face is first box-reduced
    (only the region the output square covers) to roughly the template's scale.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    matrix = alignment_matrix(points)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    k = int(1.0 / scale) if scale > 0 else 1
    if k >= 2:
        corners = transform_points(invert_affine(matrix), [[0, 0], [112, 0], [0, 112], [112, 112]])
        h, w = image.shape[:2]
        x1, y1 = np.clip(np.floor(corners.min(axis=0)).astype(int) - k, 0, [w, h])
        x2, y2 = np.clip(np.ceil(corners.max(axis=0)).astype(int) + k, 0, [w, h])
        if x2 - x1 >= k and y2 - y1 >= k:
            image = box_reduce(image[y1:y2, x1:x2], k)
            # a reduced pixel j averages source pixels k*j .. k*j+k-1, centred at k*j + (k-1)/2
            points = (points - [x1, y1] - (k - 1) / 2) / k
            matrix = alignment_matrix(points)
    warped = warp_affine(image, matrix, (ALIGNED_SIZE, ALIGNED_SIZE))
    return np.clip(np.rint(warped), 0, 255).astype(np.uint8)
