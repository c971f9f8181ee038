"""Configuration: one TOML file, `HOMESEC_*` environment overrides, secrets from env or files only.

Validated once at start-up; a bad key raises ConfigError naming it (`camera.burst.count: ...`).
Overrides use double underscores for nesting: `HOMESEC_MQTT__PORT=1884`,
`HOMESEC_CAMERA__MOTION__THRESHOLD=30`. Secrets: `HOMESEC_MQTT_PASSWORD[_FILE]`,
`HOMESEC_TELEGRAM_TOKEN[_FILE]`.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError

from camera_node.settings import CameraSettings
from homesec.contract import Role
from homesec.settings import LogSettings, MqttSettings, Section
from notifier_node.settings import NotifierSettings
from recognizer_node.settings import RecognizerSettings

ENV_PREFIX = "HOMESEC_"
SECRET_ENV = {
    "HOMESEC_MQTT_PASSWORD": ("mqtt", "password"),
    "HOMESEC_TELEGRAM_TOKEN": ("notifier", "token"),
}
# Keys that must never sit in a committed file.
SECRET_KEYS = {("mqtt", "password"), ("notifier", "token")}
DEFAULT_DATA_DIR = Path(".homesec-data")


class ConfigError(ValueError):
    """The configuration is unusable; the message says which key and why."""


class Config(Section):
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Gallery, models, spools, outbox, archive.")
    log: LogSettings = Field(default_factory=LogSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    recognizer: RecognizerSettings = Field(default_factory=RecognizerSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(path)}: cannot override inside non-table {key!r}")
        tree = node
    tree[path[-1]] = value


def _read_secret_file(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None


def _env_value(value: str) -> Any:
    """Lists and tables from the environment are JSON (`[1920, 1080]`); the rest stays text for pydantic."""
    if value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # pydantic names the key and says what it wanted
    return value


def _env_overrides(tree: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        _set_path(tree, path, _env_value(value))
    for name, (section, key) in SECRET_ENV.items():
        if env.get(name):
            _set_path(tree, [section, key], env[name])
        elif env.get(name + "_FILE"):
            _set_path(tree, [section, key], _read_secret_file(Path(env[name + "_FILE"]), name + "_FILE"))
    if env.get("HOMESEC_DATA_DIR"):
        tree["data_dir"] = env["HOMESEC_DATA_DIR"]


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against config.example.toml)"
        lines.append(f"  {key}: {msg}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read `path` (or $HOMESEC_CONFIG, or defaults), apply env overrides, validate."""
    env = os.environ if env is None else env
    if path is None and env.get("HOMESEC_CONFIG"):
        path = Path(env["HOMESEC_CONFIG"])
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            tree = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for section, key in SECRET_KEYS:
            if key in tree.get(section, {}):
                raise ConfigError(
                    f"{section}.{key}: secrets do not belong in the config file; "
                    f"set HOMESEC_{'TELEGRAM_TOKEN' if key == 'token' else 'MQTT_PASSWORD'} "
                    f"or {key}_file"
                )
    _env_overrides(tree, env)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None


def password_path(config: Config, username: str) -> Path:
    return config.data_dir / "secrets" / f"mqtt-{username}.password"


def mqtt_for_role(config: Config, role: Role | str) -> MqttSettings:
    """The MQTT settings a node of `role` connects with: its own user and password."""
    mqtt = config.mqtt
    username = mqtt.username or str(role)
    password = mqtt.password
    if password is None:
        file = mqtt.password_file or password_path(config, username)
        if file.exists():
            password = SecretStr(_read_secret_file(file, "mqtt.password_file"))
        elif mqtt.password_file is not None:
            raise ConfigError(f"mqtt.password_file: {file} does not exist")
    return mqtt.model_copy(update={"username": username, "password": password})


def telegram_token(config: Config) -> str | None:
    n = config.notifier
    if n.token is not None:
        return n.token.get_secret_value()
    if n.token_file is not None:
        return _read_secret_file(n.token_file, "notifier.token_file")
    return None
