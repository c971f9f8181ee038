"""The configuration built from the node plugins: sections, secrets, typed access, the shared CLI helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from camera_node.settings import CameraSettings
from homesec.config import Config, ConfigError, load_config, secret_keys
from homesec.files import write_atomic
from notifier_node.settings import NotifierSettings
from recognizer_node.settings import RecognizerSettings


def test_each_plugin_adds_its_section_and_a_node_reads_its_own(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[camera]\nid = "garden"\n[recognizer]\ninstance = "r2"\n')
    config = load_config(cfg, env={})
    assert config.section(CameraSettings).id == "garden"
    assert config.section(RecognizerSettings).instance == "r2"
    assert config.section(NotifierSettings) == NotifierSettings()
    with pytest.raises(ConfigError, match="no configuration section holds Config"):
        config.section(Config)


def test_errors_name_the_key_inside_a_plugin_section(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[camera.burst]\ncount = 0\n")
    with pytest.raises(ConfigError, match=r"camera\.burst\.count: "):
        load_config(cfg, env={})
    cfg.write_text("[notifer]\ncooldown_s = 1\n")
    with pytest.raises(ConfigError, match=r"notifer: unknown key"):
        load_config(cfg, env={})


def test_a_plugin_declares_its_secrets(tmp_path: Path) -> None:
    assert secret_keys()[("notifier", "token")] == "HOMESEC_TELEGRAM_TOKEN"
    cfg = tmp_path / "c.toml"
    cfg.write_text('[notifier]\ntoken = "123:abc"\n')
    with pytest.raises(ConfigError, match=r"notifier\.token: .*set HOMESEC_TELEGRAM_TOKEN or token_file"):
        load_config(cfg, env={})
    token = tmp_path / "token"
    token.write_text("123:abc\n")
    config = load_config(None, env={"HOMESEC_TELEGRAM_TOKEN_FILE": str(token)})
    secret = config.section(NotifierSettings).token
    assert secret is not None and secret.get_secret_value() == "123:abc"
    assert "123:abc" not in repr(config)


def test_the_command_line_offers_the_plugins_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from homesec.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    commands = capsys.readouterr().out
    assert "faces" in commands and "models" in commands


def test_an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_cli_section_applies_only_the_overrides_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from homesec.cliutil import cli_section

    monkeypatch.setenv("HOMESEC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HOMESEC_CONFIG", raising=False)
    args = argparse.Namespace(config=None)
    settings, data_dir = cli_section(args, RecognizerSettings, models_dir=None)
    assert settings.models_dir is None and data_dir == tmp_path
    settings, _ = cli_section(args, RecognizerSettings, models_dir=tmp_path / "m")
    assert settings.models_dir == tmp_path / "m"
