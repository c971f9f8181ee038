"""Which broker the command line dials, and what it says when it cannot know: the port `homesec up` or
`homesec broker init` left in the data dir (never a stale one), and a clear refusal without a password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from homesec.cliutil import (
    forget_broker_port,
    local_broker_port,
    record_broker_port,
    stale_port_note,
    with_local_broker,
)
from homesec.config import Config, load_config


def _config(data: Path, **env: str) -> Config:
    return load_config(None, env={"HOMESEC_DATA_DIR": str(data), **env})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_port_of_a_running_up_is_used_and_a_dead_ones_is_not(tmp_path: Path) -> None:
    record_broker_port(tmp_path, 40001, owner=os.getpid())  # an `up` that runs: this process
    assert with_local_broker(_config(tmp_path)).mqtt.port == 40001
    record_broker_port(tmp_path, 40002, owner=_dead_pid())  # an `up` killed before it could clean up
    assert local_broker_port(tmp_path) is None
    assert with_local_broker(_config(tmp_path)).mqtt.port == 1883
    assert "is no longer running" in stale_port_note(_config(tmp_path))  # said if 1883 cannot be reached
    forget_broker_port(tmp_path, owner=os.getpid())  # not this process's: left alone
    assert (tmp_path / "broker" / "port").exists()
    record_broker_port(tmp_path, 40004, owner=os.getpid())
    assert stale_port_note(_config(tmp_path)) == ""
    forget_broker_port(tmp_path, owner=os.getpid())  # `up` ends: its port is no one's
    assert not (tmp_path / "broker" / "port").exists() and local_broker_port(tmp_path) is None


def test_broker_init_records_its_port_over_an_earlier_ups(tmp_path: Path) -> None:
    from homesec.cli import main

    record_broker_port(tmp_path, 40003, owner=os.getpid())
    config = tmp_path / "c.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    assert main(["--config", str(config), "broker", "init", "--port", "1884"]) == 0
    assert with_local_broker(_config(tmp_path)).mqtt.port == 1884
    explicit = _config(tmp_path, HOMESEC_MQTT__PORT="1999")
    assert with_local_broker(explicit).mqtt.port == 1999  # a configured port always wins


def test_without_a_password_the_cli_says_where_it_looked_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from homesec.cli import main

    for name in ("HOMESEC_MQTT_PASSWORD", "HOMESEC_MQTT_PASSWORD_FILE", "HOMESEC_CONFIG", "HOMESEC_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # "another directory": no data dir here
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / ".homesec-data" / "secrets" / "mqtt-admin.password") in err
    assert "HOMESEC_DATA_DIR" in err and "homesec up" in err
