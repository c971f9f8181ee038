"""A display name in any script, where the household sees it: the boxed alert photo reads `José`, and
`homesec up`'s training line names the person as the command line did."""

from __future__ import annotations

from homesec.bus import Message
from homesec.contract import Face, Topics
from homesec.up import describe
from recognizer_node.annotate import draw_marks, drawable, mark_for
from recognizer_node.pipeline import Recognizer
from tests.conftest import FACES


def test_the_alert_photo_names_the_person_by_their_display_name(rec: Recognizer) -> None:
    data = (FACES / "obama_probe.jpg").read_bytes()
    box = (100, 100, 200, 220)
    face = Face(box=box, score=0.9, label="Jose", similarity=0.93, name="José")
    expected = draw_marks(data, [mark_for("José", 0.93, None, box)], max_pixels=rec.settings.max_image_pixels)
    assert rec.annotate(data, [face]) == expected


def test_ups_training_line_shows_the_display_name() -> None:
    t = Topics()
    body = b'{"v": 1, "ts": "2026-12-01T10:00:00Z", "request_id": "r", "label": "Jose", "name": "Jos\\u00e9",'
    msg = Message(t.train_result, body + b' "ok": true, "enrollment_id": 2, "faces_found": 1}', retain=False)
    assert describe(t, msg) == "[recognizer] training: enrolled 'José' (label 'Jose')"


def test_a_name_the_font_cannot_draw_is_shown_by_its_label(rec: Recognizer) -> None:
    data = (FACES / "obama_probe.jpg").read_bytes()
    box = (100, 100, 200, 220)
    if drawable("李雷"):  # a font with CJK is installed: then the name itself
        return
    face = Face(box=box, score=0.9, label="p-3a4f2c", similarity=0.9, name="李雷")
    expected = draw_marks(
        data, [mark_for("p-3a4f2c", 0.9, None, box)], max_pixels=rec.settings.max_image_pixels
    )
    assert rec.annotate(data, [face]) == expected
    assert drawable("José Zoë Łukasz Žółć")
