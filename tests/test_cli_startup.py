"""`homesec faces` starts without the MQTT side (paho, homesec.requests), and a request's NoAnswer still
exits with its own code."""

from __future__ import annotations

import subprocess
import sys

from homesec.cli import _is_no_answer


def test_faces_command_does_not_import_mqtt() -> None:
    code = (
        "import sys\n"
        "from homesec.cli import main\n"
        "try:\n"
        "    main(['faces', 'embed', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('paho', 'homesec.requests', 'homesec.bus'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_no_answer_is_told_from_other_timeouts() -> None:
    from homesec.requests import NoAnswer

    assert _is_no_answer(NoAnswer("no answer from recognizer"))
    assert not _is_no_answer(TimeoutError("a socket timed out"))
