"""The pipeline's overlapped work gives the same answers as doing it in order: the full pixels decoded on
another thread while the detector looks at the reduced copy, and a frame's faces refined and embedded in
parallel."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from recognizer_node.imageio import ImageError, open_image
from recognizer_node.pipeline import Recognizer
from tests.conftest import FACES


def frame_1080p(*names: str) -> bytes:
    """The given portraits side by side in a 1920x1080 JPEG (a camera's size: decoded at 1/2 to detect)."""
    canvas = Image.new("RGB", (1920, 1080), (90, 100, 110))
    for i, name in enumerate(names):
        im = Image.open(FACES / name).convert("RGB")
        im.thumbnail((600, 600))
        canvas.paste(im, (40 + i * 620, 200))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=88)
    return out.getvalue()


def test_full_pixels_decoded_on_a_pool_equal_a_decode_in_order() -> None:
    data = frame_1080p("obama_probe.jpg")
    in_order, overlapped = open_image(data), open_image(data)
    with ThreadPoolExecutor(1) as pool:
        assert overlapped.draftable(960)
        overlapped.decode_on(pool)
        assert overlapped.reduced(960, 540).shape == (540, 960, 3)
        assert np.array_equal(overlapped.full(), in_order.full())
    assert overlapped.scale == in_order.scale == 1


def test_a_corrupt_jpeg_decoded_on_a_pool_is_refused_as_before() -> None:
    data = frame_1080p("obama_probe.jpg")
    truncated = data[: len(data) // 3]
    with ThreadPoolExecutor(1) as pool:
        img = open_image(truncated)  # the header is fine
        img.decode_on(pool)
        with pytest.raises(ImageError, match="corrupt or truncated"):
            img.image()


def test_faces_in_parallel_give_the_same_faces_and_embeddings(rec: Recognizer) -> None:
    data = frame_1080p("obama_probe.jpg", "biden_train.jpg", "rose_a.jpg")
    workers, decoder = rec.workers, rec.decoder
    try:
        rec.workers, rec.decoder = None, None
        in_order = rec.analyze(data).faces
    finally:
        rec.workers, rec.decoder = workers, decoder
    parallel = rec.analyze(data).faces
    assert len(parallel) == len(in_order) == 3
    for a, b in zip(parallel, in_order, strict=True):
        assert a.box == b.box and a.landmarks == b.landmarks
        assert a.embedding is not None and b.embedding is not None
        assert float(a.embedding @ b.embedding) > 0.99999
