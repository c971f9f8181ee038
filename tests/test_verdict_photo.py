"""The alert's photo is the visit's best: when a later frame of a visit already alerted shows its
stranger clearly better, the recognizer publishes the visit's next revision with that frame, and the
notifier replaces the photo of the message sent (Bot API `editMessageMedia`; in the outbox, the JPEG),
so that its buttons and replies then mean the new photo's face."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from homesec.contract import Alert, Face, Verdict
from notifier_node.alert_faces import decode_ref
from recognizer_node.visits import Visits
from tests import test_notifier_visits as notifier_visits
from tests.fake_telegram import CHAT, FakeTelegram, jpeg_bytes
from tests.helpers import wait_until
from tests.test_notifier_delivery import Harness, make_settings
from tests.test_visits import STRANGER as STRANGER_EMBEDDING
from tests.test_visits import face, frame, near

SMALL = Face(box=(900, 300, 960, 370), score=0.9, label=None, similarity=0.05, quality=0.5)
LARGE = Face(box=(880, 290, 980, 400), score=0.9, label=None, similarity=0.06, quality=0.7)


# The fake Bot API and a notifier with a visit-long cooldown, as the other visit tests use them.
fake = notifier_visits.fake
harness = notifier_visits.harness


def visit_alert(seq: int, revision: int, faces: list[Face]) -> Alert:
    return Alert(
        camera="door", event_id="ev1", seq=seq, verdict=Verdict.UNKNOWN, faces=faces,
        snapshot_ts="2024-07-01T18:30:05Z", frames=seq + 1, revision=revision,
    )  # fmt: skip


# ---------------------------------------------------------------------------- the recognizer's side


def test_a_clearly_better_frame_of_an_alerted_visit_is_its_next_revision() -> None:
    visits = Visits(doubt_floor=0.25)
    _, first = frame(visits, 0, [(face((900, 300, 960, 370), similarity=0.05), near(STRANGER_EMBEDDING))])
    assert first is not None and first.alert and first.best.meta.seq == 0
    _, same = frame(visits, 1, [(face((901, 300, 962, 371), similarity=0.05), near(STRANGER_EMBEDDING))])
    assert same is None  # a pixel or two larger: not worth an edit
    _, better = frame(visits, 2, [(face((880, 290, 960, 380), similarity=0.05), near(STRANGER_EMBEDDING))])
    assert better is not None and better.alert and better.verdict == Verdict.UNKNOWN
    assert (better.best.meta.seq, better.best.jpeg, better.revision) == (2, b"jpeg2", 1)
    _, again = frame(visits, 3, [(face((880, 290, 962, 381), similarity=0.05), near(STRANGER_EMBEDDING))])
    assert again is None  # measured against the photo now shown


def test_a_sharper_frame_of_the_same_size_replaces_the_photo_too() -> None:
    visits = Visits(doubt_floor=0.25)
    soft = face((900, 300, 960, 370), similarity=0.05).model_copy(update={"quality": 0.4})
    sharp = face((900, 300, 961, 370), similarity=0.05).model_copy(update={"quality": 0.6})
    frame(visits, 0, [(soft, near(STRANGER_EMBEDDING))])
    _, better = frame(visits, 1, [(sharp, near(STRANGER_EMBEDDING))])
    assert better is not None and better.alert and better.best.meta.seq == 1


def test_a_named_face_never_replaces_a_strangers_photo() -> None:
    visits = Visits(doubt_floor=0.25)
    rng = np.random.default_rng(3)
    owner = rng.normal(size=128).astype(np.float32)
    owner /= np.linalg.norm(owner)
    stranger = (face((900, 300, 960, 370), similarity=0.05), near(STRANGER_EMBEDDING))
    frame(visits, 0, [stranger])
    _, later = frame(visits, 1, [stranger, (face((100, 100, 300, 300), "alice", 0.8), owner)])
    assert later is None  # the largest face is named: the stranger's photo stays


# ------------------------------------------------------------------------------ the notifier's side


def test_the_better_photo_replaces_the_alerts_photo_and_what_it_means(
    harness: Harness, fake: FakeTelegram
) -> None:
    first, better = jpeg_bytes(color=(200, 30, 30)), jpeg_bytes(color=(30, 200, 30))
    harness.inject_alert(first, visit_alert(0, 0, [SMALL]))
    (sent,) = fake.ok_calls("sendPhoto")
    message = (CHAT, sent.result["message_id"])
    harness.inject_alert(better, visit_alert(2, 1, [LARGE]))
    fake.wait(lambda: len(fake.ok_calls("editMessageMedia")) == 1)
    (edit,) = fake.ok_calls("editMessageMedia")
    media = json.loads(edit.fields["media"])
    assert media["type"] == "photo" and media["media"] == "attach://photo"
    assert (
        media["caption"].startswith("🚨 Unknown person at door")
        and "3 photos of this visit" in media["caption"]
    )
    assert fake.photos[message] == better and len(fake.ok_calls("sendPhoto")) == 1
    buttons = json.loads(edit.fields["reply_markup"])["inline_keyboard"]
    key = buttons[0][0]["callback_data"].removeprefix("enroll:")
    alerts = harness.service.deliverer.alerts
    # the edit is seen by Telegram before the notifier files the new photo under the message
    wait_until(lambda: alerts.key_for(*message) == key and alerts.jpeg(key) == better, 5)
    ref = decode_ref(alerts.face(key))  # "Enroll", /train, /not and /search now mean the new face
    assert ref is not None and (ref.event_id, ref.seq, ref.face) == ("ev1", 2, 0)
    harness.inject_alert(better, visit_alert(2, 1, [LARGE]))  # delivered again: edited once
    wait_until(lambda: not harness.service.deliverer.busy, 5)
    assert len(fake.ok_calls("editMessageMedia")) == 1


def test_a_caption_only_revision_keeps_the_photo_shown(harness: Harness, fake: FakeTelegram) -> None:
    photo = jpeg_bytes()
    harness.inject_alert(photo, visit_alert(0, 0, [SMALL]))
    second = SMALL.model_copy(update={"box": (100, 100, 150, 160)})
    harness.inject_alert(photo, visit_alert(0, 1, [SMALL, second]))  # another stranger in the same frame
    fake.wait(lambda: len(fake.ok_calls("editMessageCaption")) == 1)
    assert fake.ok_calls("editMessageMedia") == []


def test_in_the_outbox_the_better_photo_replaces_the_jpeg(tmp_path: Path) -> None:
    h = Harness(tmp_path / "data", make_settings(None))
    outbox = tmp_path / "data" / "outbox"
    try:
        first, better = jpeg_bytes(color=(200, 30, 30)), jpeg_bytes(color=(30, 200, 30))
        h.inject_alert(first, visit_alert(0, 0, [SMALL]))
        (photo,) = outbox.glob("*.jpg")
        h.inject_alert(better, visit_alert(2, 1, [LARGE]))
        (revision,) = outbox.glob("*.r1.json")
        assert json.loads(revision.read_text())["photo"] == photo.name
        assert list(outbox.glob("*.jpg")) == [photo] and photo.read_bytes() == better
    finally:
        h.close()
