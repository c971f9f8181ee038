"""The same photo trained again under its label (the bot's /train resent, an upload repeated, another
`homesec train` run) is answered `ok` with the enrollment it already has, `notice` "already enrolled",
and adds nothing; another photo of the same person is enrolled. With the real models."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from homesec.contract import ALREADY_ENROLLED, Training, TrainResult
from notifier_node.recognizer_commands import train_answer
from recognizer_node.gallery import SAME_PHOTO_SIMILARITY, Gallery
from recognizer_node.pipeline import Recognizer
from tests.conftest import FACES, open_ops

OBAMA = (FACES / "obama_train.jpg").read_bytes()


def training(request_id: str, image: bytes = OBAMA, label: str = "obama") -> Training:
    return Training(request_id=request_id, label=label, image=image)


def reencoded(data: bytes, quality: int) -> bytes:
    """The same photo saved again as JPEG: what a chat app or a phone's share sheet sends."""
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_the_same_photo_twice_is_one_enrollment(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        first = ops.train(training("r1"))
        again = ops.train(training("r2"))  # another request id: not a retry, the same photo
        assert first.ok and first.notice is None
        assert again.ok and again.notice == ALREADY_ENROLLED and again.enrollment_id == first.enrollment_id
        assert ops.summary.enrollments == 1
        assert ops.train(training("r2")) == again  # a retry of it gets the same answer
        by_name = ops.train(training("r3", label="OBAMA"))  # the label in another case: the same person
        assert by_name.notice == ALREADY_ENROLLED and ops.summary.enrollments == 1
    finally:
        ops.close()


def test_the_same_photo_reencoded_is_one_enrollment(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        first = ops.train(training("r1"))
        again = ops.train(training("r2", reencoded(OBAMA, 70)))
        assert again.ok and again.notice == ALREADY_ENROLLED and again.enrollment_id == first.enrollment_id
        assert ops.summary.enrollments == 1
    finally:
        ops.close()


def test_another_photo_of_the_same_person_is_enrolled(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        first = ops.train(training("r1"))
        other = ops.train(training("r2", (FACES / "obama_other.jpg").read_bytes()))
        assert other.ok and other.notice is None and other.enrollment_id != first.enrollment_id
        assert ops.summary.enrollments == 2
    finally:
        ops.close()


def test_the_same_photo_under_another_label_is_still_a_look_alike(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        ops.train(training("r1"))
        refused = ops.train(training("r2", label="barack"))  # only its own label's enrollments count
        assert not refused.ok and refused.looks_like == "obama" and refused.notice is None
    finally:
        ops.close()


def test_the_gallery_tells_a_new_enrollment_from_one_it_has(tmp_path: Path) -> None:
    with Gallery(tmp_path / "gallery.db") as gallery:
        face = np.eye(1, 128, 0, dtype=np.float32).reshape(-1)
        near = face + np.eye(1, 128, 1, dtype=np.float32).reshape(-1) * 0.1  # cosine 0.995
        far = np.eye(1, 128, 1, dtype=np.float32).reshape(-1)

        def add(label: str, embedding: np.ndarray, model: str = "m") -> tuple[int, bool]:
            return gallery.add_once(label, embedding, model, b"png", same_within=SAME_PHOTO_SIMILARITY)

        first, already = add("a", face)
        assert not already
        assert add("a", near) == (first, True)
        assert not add("a", near, "other-model")[1]  # only embeddings of one model compare
        assert not add("a", far)[1]
        assert not add("b", face)[1]  # another label's: the look-alike guard's business
        assert gallery.add("a", face, "m", b"png") != first  # without `same_within`: always added
        assert gallery.count() == 5


def test_the_bot_says_it_was_already_enrolled() -> None:
    answer = TrainResult(
        request_id="r2", label="Jose", name="José", ok=True, enrollment_id=4, notice=ALREADY_ENROLLED
    )
    assert train_answer(answer) == "✅ José: already enrolled (enrollment #4)."
