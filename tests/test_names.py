"""Names outside ASCII (`José`, `Zoë`, `李雷`): a display name in any script beside a safe label, shown
wherever a person is, and either one accepted wherever a person is named."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from homesec.contract import (
    Alert,
    ContractError,
    DeleteLabel,
    Face,
    GallerySummary,
    ListLabels,
    MergeLabels,
    RenameLabel,
    Topics,
    Training,
    TrainRequest,
    Verdict,
    check_name,
    decode_train,
)
from notifier_node.caption import build_caption
from notifier_node.delivery import not_buttons
from recognizer_node.gallery import Gallery, Person, label_for
from recognizer_node.operations import RecognizerOperations
from recognizer_node.pipeline import Recognizer
from tests.conftest import FACES
from tests.fake_telegram import FakeTelegram, jpeg_bytes, say, wait_text
from tests.http_server import Api, photo, serve
from tests.test_notifier_bot import Recognizer as FakeRecognizer
from tests.test_notifier_bot import fake, start
from tests.test_recognizer_operations import meta

__all__ = ["fake"]

NAMES = ["José", "Zoë", "李雷", "Ahmed Al-Farsi"]


def training(photo_name: str, label: str, request_id: str, name: str | None = None) -> Training:
    return Training(request_id=request_id, label=label, name=name, image=(FACES / photo_name).read_bytes())


# ------------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("name", [*NAMES, "Nguyễn Thị Minh Khai", "محمد", "می\u200cخواهم"])
def test_a_name_in_any_script_is_accepted_wherever_a_person_is_named(name: str) -> None:
    assert check_name(f" {name} ") == name
    assert DeleteLabel(label=name).label == name
    req = decode_train(Topics(), Topics().train_raw(name), b"jpeg", {}, None)
    assert req.label == name


def test_a_name_is_kept_in_one_unicode_form() -> None:
    decomposed = "Jose\u0301"  # e + combining acute, as some keyboards type it
    assert check_name(decomposed) == "José"


@pytest.mark.parametrize(
    "bad", ["../x", "a/b", "+", "#", "", " ", "x" * 65, "..", "-x", "a\nb", "a\u200bb", "\u202eevil"]
)
def test_what_could_pass_for_a_path_a_wildcard_or_hide_is_still_refused(bad: str) -> None:
    with pytest.raises(ContractError, match="invalid label"):
        check_name(bad)


def test_a_label_is_derived_from_a_name_safe_and_stable() -> None:
    assert [label_for(n) for n in NAMES[:2]] == ["Jose", "Zoe"]
    assert label_for("Ahmed Al-Farsi") == "Ahmed Al-Farsi"
    assert label_for("Łukasz Żółć") == "Lukasz Zolc" and label_for("O'Brien") == "O-Brien"
    chinese = label_for("李雷")
    assert re.fullmatch(r"p-[0-9a-f]{6}", chinese) and label_for("李雷") == chinese
    assert label_for("韩梅梅") != chinese


# ------------------------------------------------------------------------------------ the gallery

OLD_SCHEMA = """
CREATE TABLE enrollments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL COLLATE NOCASE, model TEXT NOT NULL,
    embedding BLOB NOT NULL, crop BLOB NOT NULL, crop_format TEXT NOT NULL, quality REAL,
    source TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE negatives (
    id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL COLLATE NOCASE, model TEXT NOT NULL,
    embedding BLOB NOT NULL, crop BLOB, crop_format TEXT, source TEXT NOT NULL, created TEXT NOT NULL
);
"""


def test_a_gallery_made_before_names_is_migrated_and_shows_its_labels(tmp_path: Path) -> None:
    path = tmp_path / "gallery.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO enrollments (label, model, embedding, crop, crop_format, quality, source, created)"
            " VALUES ('alice', 'm', ?, x'00', 'png', 0.9, 'cli', '2026-01-01T00:00:00.000Z')",
            (np.ones(4, np.float32).tobytes(),),
        )
    db.close()
    with Gallery(path) as gallery:
        assert gallery.names() == {"alice": "alice"} and gallery.resolve("ALICE") == "alice"
        assert gallery.person("José") == Person("Jose", "José")
        gallery.set_name(Person("alice", "Alice Ñúñez"))
    with Gallery(path) as gallery:  # kept
        assert gallery.names() == {"alice": "Alice Ñúñez"} and gallery.resolve("alice ñúñez") == "alice"


def test_a_derived_label_never_takes_someone_elses(tmp_path: Path) -> None:
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add("Jose", np.ones(4), "m", b"png")  # someone enrolled as plain "Jose"
        assert gallery.person("José") == Person("Jose-2", "José")
        assert gallery.person("Jose") == Person("Jose", "Jose")  # a label names its own person
        assert gallery.person("José", renaming="Jose") == Person("Jose", "José")


# --------------------------------------------------------------------------------- the recognizer


def test_people_are_trained_shown_and_named_by_either_name(ops: RecognizerOperations) -> None:
    plain = ops.train(training("biden_train.jpg", "Jose", "t1"))
    accented = ops.train(training("obama_train.jpg", "José", "t2"))
    assert (plain.label, plain.name) == ("Jose", "Jose")
    assert accented.ok and (accented.label, accented.name) == ("Jose-2", "José")
    chinese = ops.train(training("rose_a.jpg", "李雷", "t3"))
    assert chinese.ok and chinese.name == "李雷" and chinese.label == label_for("李雷")
    again = ops.train(training("obama_other.jpg", "josé", "t4"))  # the display name, any case
    assert again.ok and again.label == "Jose-2"
    assert ops.summary.names == {"Jose": "Jose", "Jose-2": "José", chinese.label: "李雷"}
    assert ops.summary.labels == {"Jose": 1, "Jose-2": 2, chinese.label: 1}

    result, _ = ops.recognize(meta("e1"), (FACES / "obama_probe.jpg").read_bytes())
    (face,) = result.faces
    assert (face.label, face.name) == ("Jose-2", "José")

    listed = ops.gallery_command(ListLabels())
    assert listed.names == {"Jose": "Jose", "Jose-2": "José", chinese.label: "李雷"}
    forgot = ops.gallery_command(DeleteLabel(label="李雷"))
    assert forgot.ok and forgot.removed == 1 and chinese.label not in forgot.labels
    renamed = ops.gallery_command(RenameLabel(label="José", new_label="Zoë"))
    assert renamed.ok and renamed.labels == {"Jose": 1, "Zoe": 2} and renamed.names["Zoe"] == "Zoë"
    kept_label = ops.gallery_command(RenameLabel(label="Zoë", new_label="Zoe", name="Zoë Ann"))
    assert kept_label.ok and kept_label.names == {"Jose": "Jose", "Zoe": "Zoë Ann"}
    merged = ops.gallery_command(MergeLabels(label="Zoë Ann", into="jose"))
    assert merged.ok and merged.labels == {"Jose": 3} and merged.names == {"Jose": "Jose"}
    missing = ops.gallery_command(DeleteLabel(label="李雷"))
    assert not missing.ok and missing.reason == "no one is enrolled as '李雷'"


def test_a_request_may_carry_a_display_name_beside_its_label(ops: RecognizerOperations) -> None:
    answer = ops.train(training("obama_train.jpg", "barack", "t1", name="Barack Hussein Obama"))
    assert (answer.label, answer.name) == ("barack", "Barack Hussein Obama")
    req = TrainRequest(label="barack", name="Бара́к", image_b64="")
    assert TrainRequest.model_validate_json(req.to_json()).name == "Бара́к"


# ------------------------------------------------------------------------------------ shown names


def test_captions_and_buttons_show_the_display_name() -> None:
    face = Face(box=(0, 0, 10, 10), score=0.9, label="Jose-2", similarity=0.7, name="José")
    alert = Alert(
        camera="door", event_id="e1", seq=0, verdict=Verdict.KNOWN, faces=[face],
        snapshot_ts=datetime(2026, 1, 1, tzinfo=UTC), requested=True,
    )  # fmt: skip
    assert "• known: José (0.70)" in build_caption(alert, UTC)
    assert not_buttons("e1", 0, [face])[0][0]["text"] == "🙅 Not José"


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def test_the_http_api_shows_and_takes_display_names(api: Api) -> None:
    r = api.admin.post(
        "/api/image/train", files={"File": ("a.jpg", photo("obama_train.jpg"))}, data={"label": "José"}
    )
    assert r.json()["ok"] and (r.json()["label"], r.json()["name"]) == ("Jose", "José")
    (info,) = api.viewer.get("/api/gallery/labels").json()
    assert (info["label"], info["name"], info["enrollments"]) == ("Jose", "José", 1)
    (enrollment,) = api.viewer.get(f"/api/gallery/labels/{quote('José')}").json()
    assert enrollment["name"] == "José"
    gone = api.admin.delete(f"/api/gallery/labels/{quote('José')}")
    assert gone.status_code == 200 and gone.json()["removed"] == 1


def test_the_bot_takes_and_shows_display_names(tmp_path: Path, fake: FakeTelegram) -> None:
    h, recognizer = start(tmp_path, fake)
    try:
        assert isinstance(recognizer, FakeRecognizer)
        say(fake, "", caption="/train José", photo=fake.add_photo(jpeg_bytes(64, 64)))
        wait_text(fake, "Enrolled José")
        assert [r.label for r in recognizer.train] == ["José"]
        say(fake, "/forget 李雷")
        wait_text(fake, "Forgetting 李雷")
        assert [(c.op, c.label) for c in recognizer.gallery] == [("delete_label", "李雷")]
        summary = GallerySummary(labels={"Jose": 2}, names={"Jose": "José"}, enrollments=2, model="sface")
        h.bus.inject(h.bus.topics.gallery, summary)
        say(fake, "/labels")
        assert "José (2 photos)" in wait_text(fake, "Known people")
    finally:
        h.close()
