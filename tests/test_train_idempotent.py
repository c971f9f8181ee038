"""Training is idempotent by request id: a retry of a request whose answer was lost (a timeout) is
answered with the first answer and enrolls nothing more, over MQTT, HTTP and from `homesec train`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from homesec.contract import (
    DeleteLabel,
    RenameLabel,
    Role,
    Topics,
    Training,
    TrainRequest,
    TrainResult,
    parse,
    training_request_id,
)
from recognizer_node import gallery as gallery_module
from recognizer_node.gallery import Gallery
from recognizer_node.pipeline import Recognizer
from tests.conftest import FACES, open_ops
from tests.http_server import Api, photo, serve
from tests.mqtt_helpers import Broker, Collector

T = Topics()


def training(request_id: str, photo_name: str = "obama_train.jpg", label: str = "José") -> Training:
    return Training(request_id=request_id, label=label, image=(FACES / photo_name).read_bytes())


def test_a_retry_is_answered_again_without_a_second_enrollment(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    first = ops.train(training("r1"))
    again = ops.train(training("r1"))
    assert first.ok and again == first and ops.summary.enrollments == 1
    other = ops.train(training("r2"))  # another request of the same photo: already enrolled
    assert other.ok and other.enrollment_id == first.enrollment_id and ops.summary.enrollments == 1
    reused = ops.train(training("r1", "obama_other.jpg"))  # another training under a used id: done
    assert reused.ok and ops.summary.enrollments == 2
    ops.close()
    ops = open_ops(tmp_path, rec)  # kept in the gallery: a restarted recognizer still knows
    try:
        assert ops.train(training("r1")) == first and ops.summary.enrollments == 2
        ops.gallery_command(DeleteLabel(label="José"))  # forgotten since: trained afresh
        fresh = ops.train(training("r1"))
        assert fresh.ok and fresh.enrollment_id not in (first.enrollment_id, reused.enrollment_id)
        assert ops.summary.enrollments == 1
    finally:
        ops.close()


def test_a_retry_after_a_rename_names_the_person_as_they_are_now(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        ops.train(training("r1"))
        ops.gallery_command(RenameLabel(label="José", new_label="Zoë"))
        again = ops.train(training("r1"))
        assert (again.label, again.name) == ("Zoe", "Zoë") and ops.summary.enrollments == 1
    finally:
        ops.close()


def test_a_refusal_is_not_remembered(tmp_path: Path, rec: Recognizer) -> None:
    ops = open_ops(tmp_path, rec)
    try:
        assert not ops.train(training("r1", "two_faces.jpg")).ok
        ok = ops.train(Training(request_id="r1", label="group", image=photo("two_faces.jpg"), largest=True))
        assert ok.ok  # nothing was enrolled: the same id may ask again, differently
    finally:
        ops.close()


def test_the_gallery_enrolls_a_request_once_and_remembers_a_bounded_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gallery_module, "REMEMBERED_TRAININGS", 3)
    with Gallery(tmp_path / "g.sqlite3") as g:
        one = g.add("a", np.ones(4), "m", b"png", request_key="r0")
        assert g.add("a", np.ones(4), "m", b"png", request_key="r0") == one  # its answer was not kept yet
        assert g.count() == 1 and g.answered("r0") is None
        g.remember_answer("r0", '{"answer": 0}')
        assert g.answered("r0") == ('{"answer": 0}', "a")
        for n in range(1, 4):
            g.add("a", np.ones(4), "m", b"png", request_key=f"r{n}")
        rows = g._db.execute("SELECT request_key FROM trainings ORDER BY rowid").fetchall()
        assert [r[0] for r in rows] == ["r1", "r2", "r3"]  # the oldest forgotten


@pytest.fixture
def api(tmp_path: Path, rec: Recognizer) -> Iterator[Api]:
    yield from serve(tmp_path, rec)


def test_http_training_with_a_request_id_is_idempotent(api: Api) -> None:
    def post() -> dict[str, object]:
        form = {"label": "José", "request_id": "retry-me"}
        r = api.admin.post("/api/image/train", files={"File": ("a.jpg", photo("obama_train.jpg"))}, data=form)
        assert r.status_code == 200, r.text
        answer: dict[str, object] = r.json()
        return answer

    first, again = post(), post()
    assert first["ok"] and again == first and first["request_id"] == "retry-me"
    assert api.ops.summary.enrollments == 1


def test_the_request_id_of_a_cli_training_is_the_same_for_the_same_photo() -> None:
    a, b = photo("obama_train.jpg"), photo("obama_other.jpg")
    assert training_request_id("José", a) == training_request_id(" José ", a)
    assert len({training_request_id("José", a), training_request_id("José", b),
                training_request_id("Zoë", a), training_request_id("José", a, force=True),
                training_request_id("José", a, largest=True)}) == 5  # fmt: skip


# ----------------------------------------------------------------------- over a real mosquitto


@pytest.fixture
def recognizer(fresh_broker: Broker, models_dir: Path, tmp_path: Path) -> Iterator[None]:
    from recognizer_node.service import RecognizerService
    from recognizer_node.settings import RecognizerSettings

    bus = fresh_broker.bus(Role.RECOGNIZER, "recognizer/main")
    service = RecognizerService(RecognizerSettings(models_dir=models_dir), tmp_path / "rec", bus)
    service.start()
    bus.start()
    assert bus.wait_connected(10)
    yield
    service.stop()
    bus.stop()


@pytest.mark.integration
def test_homesec_train_again_after_a_lost_answer_does_not_enroll_twice(
    fresh_broker: Broker, recognizer: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from homesec.cli import main

    data = photo("obama_train.jpg")
    # The first attempt: the recognizer enrolls, the answer never reaches the command (a timeout).
    first = TrainRequest(
        request_id=training_request_id("José", data),
        label="José",
        image_b64=base64.b64encode(data).decode(),
    )
    admin = fresh_broker.bus(Role.ADMIN, "cli/lost")
    answers = Collector(fresh_broker, T.train_result)
    try:
        admin.start()
        assert admin.wait_connected(10) and admin.publish_confirmed(T.train, first)
        enrolled = parse(TrainResult, answers.topic(T.train_result, timeout=30).payload)
        assert enrolled.ok
    finally:
        answers.close()
        admin.stop()
    config = fresh_broker.directory / "cli.toml"
    config.write_text(f'data_dir = "{fresh_broker.directory}"\n[mqtt]\nport = {fresh_broker.port}\n')
    photo_path = fresh_broker.directory / "jose.jpg"
    photo_path.write_bytes(data)

    def cli(*argv: str) -> tuple[int, str]:
        code = main(["--config", str(config), *argv])
        return code, capsys.readouterr().out

    code, out = cli("train", "José", str(photo_path), "--json")  # the household tries again
    again = json.loads(out)
    assert code == 0 and again["enrollment_id"] == enrolled.enrollment_id and again["name"] == "José"
    code, out = cli("labels", "--json")
    assert code == 0 and json.loads(out) == {"Jose": 1}
    code, out = cli("labels")
    assert out.splitlines()[0] == "José\t1 photo\t(label Jose)"
