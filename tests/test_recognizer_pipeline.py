"""The recognizer on real photos with the real ONNX models."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from homesec.contract import ContractError, Verdict
from recognizer_node.gallery import Gallery
from recognizer_node.matching import cosine
from recognizer_node.pipeline import Recognizer, rescale_box
from tests.conftest import FACES
from tests.face_frames import small_face_frame


def photo(name: str) -> bytes:
    return (FACES / name).read_bytes()


def jpeg(im: Image.Image, quality: int = 90, **kw: object) -> bytes:
    out = io.BytesIO()
    im.convert("RGB").save(out, format="JPEG", quality=quality, **kw)
    return out.getvalue()


def blank() -> bytes:
    return jpeg(Image.new("RGB", (640, 480), (120, 130, 140)))


@pytest.fixture(scope="module")
def embeddings(rec: Recognizer) -> dict[str, np.ndarray]:
    out = {}
    for name in ("obama_train.jpg", "obama_probe.jpg", "biden_train.jpg", "stranger.png"):
        (face,) = rec.analyze(photo(name)).faces
        assert face.embedding is not None
        out[name] = face.embedding
    return out


@pytest.fixture
def gallery(rec: Recognizer, tmp_path: Path) -> Gallery:
    g = Gallery(tmp_path / "gallery.sqlite3")
    assert rec.enroll(photo("obama_train.jpg"), "obama", g).ok
    assert rec.enroll(photo("biden_train.jpg"), "biden", g).ok
    return g


def test_one_face_per_portrait_with_sane_geometry(rec: Recognizer) -> None:
    for name in ("obama_train.jpg", "obama_probe.jpg", "biden_train.jpg", "stranger.png"):
        a = rec.analyze(photo(name))
        assert len(a.faces) == 1, name
        f = a.faces[0]
        x1, y1, x2, y2 = f.box
        assert 0 <= x1 < x2 <= a.width and 0 <= y1 < y2 <= a.height
        assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in f.landmarks)
        right_eye, left_eye = f.landmarks[0], f.landmarks[1]
        assert right_eye[0] < left_eye[0]  # as seen in the image
        assert f.score > 0.8 and f.rejected is None and f.crop.shape == (112, 112, 3)
        assert f.embedding is not None and np.linalg.norm(f.embedding) == pytest.approx(1, abs=1e-5)
        assert {"decode", "detect", "embed", "total"} <= set(a.timings_ms)


def test_group_photo_has_three_faces(rec: Recognizer) -> None:
    assert len(rec.analyze(photo("two_faces.jpg")).faces) == 3  # obama, biden and a child


def test_same_person_above_and_different_people_below_the_threshold(
    rec: Recognizer, embeddings: dict[str, np.ndarray]
) -> None:
    t = rec.settings.match_threshold
    assert cosine(embeddings["obama_train.jpg"], embeddings["obama_probe.jpg"]) > t + 0.2
    for other in ("biden_train.jpg", "stranger.png"):
        assert cosine(embeddings["obama_train.jpg"], embeddings[other]) < t - 0.05
        assert cosine(embeddings["obama_probe.jpg"], embeddings[other]) < t - 0.05


def test_verdicts(rec: Recognizer, gallery: Gallery) -> None:
    known = rec.recognize(photo("obama_probe.jpg"), gallery)
    assert known.verdict is Verdict.KNOWN and known.faces[0].label == "obama"
    stranger = rec.recognize(photo("stranger.png"), gallery)
    assert stranger.verdict is Verdict.UNKNOWN
    assert stranger.faces[0].label is None and stranger.faces[0].closest in {"obama", "biden"}
    group = rec.recognize(photo("two_faces.jpg"), gallery)
    assert sorted(str(f.label) for f in group.faces) == ["None", "biden", "obama"]
    assert group.verdict is Verdict.UNKNOWN  # the child is nobody we know
    assert rec.recognize(blank(), gallery).verdict is Verdict.NO_FACE
    assert "match" in known.timings_ms
    wire = known.faces[0].to_contract()
    assert wire.label == "obama" and wire.similarity is not None and wire.similarity > 0.5


def test_enrollment_refusals(rec: Recognizer, tmp_path: Path) -> None:
    g = Gallery(tmp_path / "g.sqlite3")
    assert rec.enroll(blank(), "x", g).reason == "no face found"
    group = rec.enroll(photo("two_faces.jpg"), "x", g)
    assert not group.ok and group.faces_found == 3
    assert group.reason == "3 faces found; send a photo with one face or ask for the largest"
    small = Image.open(FACES / "obama_probe.jpg").reduce(8)  # the face is ~45 px wide
    refused = rec.enroll(jpeg(small), "x", g)
    assert not refused.ok and refused.reason is not None
    assert refused.reason.startswith("face too small (") and refused.reason.endswith(" px < 60 px)")
    with pytest.raises(ContractError):
        rec.enroll(photo("obama_train.jpg"), "../../etc/passwd", g)
    assert g.count() == 0
    largest = rec.enroll(photo("two_faces.jpg"), "someone", g, largest=True, source="test")
    assert largest.ok and largest.enrollment_id is not None and largest.quality is not None
    assert g.enrollments()[0].source == "test"
    assert g.crop(largest.enrollment_id) is not None


def test_blurred_face_is_rejected_with_its_reason(rec: Recognizer, gallery: Gallery) -> None:
    im: Image.Image = Image.open(FACES / "obama_probe.jpg")
    im = im.resize((im.width // 4, im.height // 4)).filter(ImageFilter.GaussianBlur(4))
    result = rec.recognize(jpeg(im), gallery)
    assert result.faces, "the face is still detected"
    for f in result.faces:
        assert f.face.rejected is not None and f.face.rejected.startswith("face too blurred (sharpness ")
        assert f.label is None and f.face.embedding is None
    assert result.verdict is Verdict.NO_FACE


def camera_frame(face_px: int) -> tuple[bytes, tuple[int, int, int, int]]:
    """obama_probe scaled so the face is ~face_px wide, in a dark 1920x1080 JPEG at quality 35."""
    src = Image.open(FACES / "obama_probe.jpg")
    f = face_px / 357  # the face is ~357 px wide in the photo
    small = src.resize((round(src.width * f), round(src.height * f)), Image.Resampling.LANCZOS)
    frame = Image.new("RGB", (1920, 1080), (60, 60, 55))
    frame.paste(small, (1300, 500))
    dark = Image.eval(frame, lambda v: int(v * 0.4))
    person = (1300, 500, 1300 + small.width, 500 + small.height)
    return jpeg(dark, quality=35), person


def test_small_face_in_a_dark_1080p_frame_is_found_and_named(rec: Recognizer, gallery: Gallery) -> None:
    data, person = camera_frame(48)
    for motion_box in (None, person):
        result = rec.recognize(data, gallery, motion_box=motion_box)
        assert [f.label for f in result.faces] == ["obama"], motion_box
        assert 35 <= result.faces[0].face.px <= 60


def test_a_face_too_small_to_judge_is_its_own_verdict(rec: Recognizer, gallery: Gallery) -> None:
    data, person = camera_frame(24)
    result = rec.recognize(data, gallery, motion_box=person)
    (face,) = result.faces
    assert face.label is None and (face.face.rejected or "").startswith("face too small (")
    assert result.verdict is Verdict.TOO_SMALL  # someone is there: not "no face", not a stranger
    assert rec.recognize(blank(), gallery).verdict is Verdict.NO_FACE


def test_a_face_only_the_motion_box_pass_finds(rec: Recognizer, gallery: Gallery) -> None:
    frame = small_face_frame()
    alone = rec.recognize(frame.jpeg, gallery)
    assert alone.faces == [] and "detect_roi" not in alone.timings_ms  # 6 px in the whole-frame pass
    result = rec.recognize(frame.jpeg, gallery, motion_box=frame.box)
    assert [f.label for f in result.faces] == ["obama"] and result.timings_ms["detect_roi"] > 0
    x1, y1, x2, y2 = result.faces[0].face.box
    assert frame.box[0] <= x1 < x2 <= frame.box[2] and frame.box[1] <= y1 < y2 <= frame.box[3]
    assert 40 <= result.faces[0].face.px <= 56


def test_exif_rotated_photo(rec: Recognizer, embeddings: dict[str, np.ndarray]) -> None:
    im = Image.open(FACES / "obama_probe.jpg").transpose(Image.Transpose.ROTATE_90)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated back upright
    (face,) = rec.analyze(jpeg(im, exif=exif.tobytes())).faces
    assert face.embedding is not None
    assert cosine(face.embedding, embeddings["obama_probe.jpg"]) > 0.9


def test_annotate_draws_green_known_and_red_unknown(rec: Recognizer, gallery: Gallery) -> None:
    data = photo("two_faces.jpg")
    result = rec.recognize(data, gallery)
    annotated = Image.open(io.BytesIO(rec.annotate(data, result.faces)))
    assert annotated.format == "JPEG" and annotated.size == Image.open(FACES / "two_faces.jpg").size
    pixels = np.asarray(annotated).astype(int)
    for f in result.faces:
        x1, y1, _, y2 = f.face.box
        r, g, _ = pixels[(y1 + y2) // 2, x1]  # on the left edge of the box
        if f.label is not None:
            assert g > 150 and r < 100, f.label
        else:
            assert r > 150 and g < 100
    contract_faces = [f.to_contract() for f in result.faces]
    assert rec.annotate(data, contract_faces)[:2] == b"\xff\xd8"


def test_image_errors_are_contract_errors(rec: Recognizer) -> None:
    with pytest.raises(ContractError, match="empty image"):
        rec.analyze(b"")


def test_motion_box_is_scaled_from_the_cameras_declared_size() -> None:
    assert rescale_box((100, 50, 300, 250), (2000, 1000), (1000, 500)) == (50, 25, 150, 125)
    assert rescale_box((1, 2, 3, 4), (640, 480), (640, 480)) == (1, 2, 3, 4)
