"""The user-facing docs say what is so: the bot's commands in telegram.md are the bot's, its caption
examples are what the caption code writes, `homesec faces --help` shows the JSON shapes the README
points to, and the README's recipes and commands exist."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from homesec.contract import Alert, ArmCommand, Face, RecognitionResult, Role, Topics, Verdict, VisitState
from tests.conftest import FACES
from tests.mqtt_helpers import Broker

REPO = Path(__file__).parent.parent
TELEGRAM = (REPO / "docs" / "telegram.md").read_text()
README = (REPO / "README.md").read_text()
T = Topics()


def _blocks(text: str) -> list[str]:
    """The fenced code blocks of a Markdown text, dedented."""
    found = re.findall(r"^( *)```[a-z]*\n(.*?)^\1```", text, flags=re.M | re.S)
    return [
        "\n".join(line[len(indent) :] for line in body.rstrip("\n").split("\n")) for indent, body in found
    ]


def _bot_commands() -> set[str]:
    """The keys of the bot's command table (`self.commands = {...}` in notifier_node/bot.py)."""
    tree = ast.parse((REPO / "notifier_node" / "bot.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Attribute) and t.attr == "commands" for t in targets):
                return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    raise AssertionError("no command table in notifier_node/bot.py")


def test_telegram_md_lists_every_bot_command() -> None:
    from notifier_node.bot import HELP

    commands = _bot_commands()
    assert {"help", "search", "not"} <= commands
    menu = next(b for b in _blocks(TELEGRAM) if b.startswith("status - "))
    listed = {line.split(" - ")[0] for line in menu.splitlines()}
    table = set(re.findall(r"^\| `/([a-z]+)", TELEGRAM, flags=re.M)) | {"disarm"}  # `/arm`, `/disarm`
    assert listed == commands - {"start"}, "the /setcommands list"
    assert table == commands - {"start"}, "the command table"
    assert {c for c in commands - {"start", "help"} if f"/{c}" not in HELP} == set(), "/help"


ZONE = ZoneInfo("Europe/Paris")
AT = datetime(2026, 11, 22, 17, 30, 5, tzinfo=ZoneInfo("UTC"))


def _alert(verdict: Verdict, *faces: Face, camera: str = "door") -> Alert:
    return Alert(camera=camera, event_id="e1", seq=0, verdict=verdict, faces=list(faces), snapshot_ts=AT)


def test_the_caption_examples_are_what_the_notifier_writes() -> None:
    from notifier_node.caption import build_caption, correction_caption, with_count

    blocks = _blocks(TELEGRAM)
    unknown = Face(box=(1, 2, 3, 4), score=0.9, label=None, similarity=0.31, closest="alice")
    assert build_caption(_alert(Verdict.UNKNOWN, unknown), ZONE) in blocks
    later = AT.replace(minute=41, second=12)
    small = Face(box=(1, 2, 3, 4), score=0.9, label=None, similarity=None,
                 rejected="face too small (31 px < 38 px in this light)")  # fmt: skip
    too_small = _alert(Verdict.TOO_SMALL, small, camera="garden").model_copy(update={"snapshot_ts": later})
    assert build_caption(too_small, ZONE) in blocks
    blurred = small.model_copy(update={"rejected": "face too blurred (sharpness 0.6 < 1.0)"})
    no_face = _alert(Verdict.NO_FACE, blurred, camera="garden").model_copy(update={"snapshot_ts": later})
    assert build_caption(no_face, ZONE) in blocks
    owner = Face(box=(1, 2, 3, 4), score=0.9, label="owner", similarity=0.78)
    named = RecognitionResult(
        camera="door", event_id="e1", seq=2, verdict=Verdict.KNOWN, faces=[owner], timings_ms={},
        model="m", node="recognizer/main",
        visit=VisitState(verdict=Verdict.KNOWN, frames=3, revision=2, decided=True),
    )  # fmt: skip
    assert correction_caption(_alert(Verdict.UNKNOWN, unknown), named, ZONE) in blocks
    assert with_count("x", 3).splitlines()[-1] in TELEGRAM  # the "+N more photos" line, word for word


def test_faces_help_shows_the_json_shapes_the_readme_points_to() -> None:
    assert "`homesec faces --help`" in README
    shown = subprocess.run(
        [sys.executable, "-m", "homesec", "faces", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for shape in ('{"path":', '"faces": [{"box":', '"similarity":', '"same_person":', '"event_id":'):
        assert shape in shown, shape


def test_the_readme_recipes_work_as_written() -> None:
    assert "-C 1 >" not in README or "-N" in README  # a JPEG saved from mosquitto_sub without a newline
    for line in README.splitlines():
        if "mosquitto_sub" in line and "'homesec/#'" in line and not line.startswith("[up]"):  # up's own port
            assert "-T 'homesec/train/+'" in line, line  # the JPEGs the viewer may read stay off the terminal
            assert "-p 18830" not in line, line  # the port `up` chose, not the one it prefers
    setup = [b for b in _blocks(README) if b.startswith("./scripts/")]
    assert setup == ["./scripts/up.sh", "./scripts/test.sh"]  # the two set-up commands, no more


@pytest.mark.parametrize("command", ["visits", "visitors", "enable", "disable", "arm", "capture", "status"])
def test_the_readme_shows_the_commands(command: str) -> None:
    assert re.search(rf"homesec {command}\b", README), command


def _sub(broker: Broker, *args: str) -> bytes:
    password = broker.files.passwords["viewer"]
    base = [
        "mosquitto_sub",
        "-V",
        "mqttv5",
        "-p",
        str(broker.port),
        "-u",
        "viewer",
        "-P",
        password,
        "-W",
        "10",
    ]
    return subprocess.run([*base, *args], capture_output=True, timeout=20, check=True).stdout


@pytest.mark.integration
def test_the_mosquitto_sub_recipes_keep_jpegs_whole_and_off_the_terminal(fresh_broker: Broker) -> None:
    """Retained messages reach a new subscriber at once: mosquitto_sub needs no ready signal."""
    jpeg = (FACES / "obama_train.jpg").read_bytes()
    admin = fresh_broker.bus(Role.ADMIN, "cli/docs", persistent=False, announce=False)
    admin.start()
    try:
        assert admin.wait_connected(10)
        assert admin.publish_confirmed(T.train_raw("alice"), jpeg, retain=True)
        assert admin.publish_confirmed(T.armed_cmd, ArmCommand(armed=False), retain=True)
    finally:
        admin.stop()
    assert _sub(fresh_broker, "-t", "homesec/train/+", "-C", "1", "-N") == jpeg  # `-C 1 -N > photo.jpg`
    shown = _sub(fresh_broker, "-t", "homesec/#", "-T", "homesec/train/+", "-T", "homesec/recognizer/cmd/search",
                 "-C", "1", "-v")  # fmt: skip
    assert shown.startswith(b"homesec/notifier/cmd/arm {") and b"\xff\xd8" not in shown
