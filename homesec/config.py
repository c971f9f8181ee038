"""Configuration: one TOML file, `HOMESEC_*` environment overrides, secrets from env or files only.

Validated once at start-up; a bad key raises ConfigError naming it (`camera.burst.count: ...`).
Overrides use double underscores for nesting: `HOMESEC_MQTT__PORT=1884`,
`HOMESEC_CAMERA__MOTION__THRESHOLD=30`. Secrets: `HOMESEC_MQTT_PASSWORD[_FILE]` and those the node
plugins declare (`homesec.plugins`), which also contribute one section each.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, create_model

from homesec.contract import Role
from homesec.plugins import NodePlugin, node_plugins
from homesec.settings import LogSettings, MqttSettings, Section

ENV_PREFIX = "HOMESEC_"
CORE_SECRETS = {
    ("mqtt", "password"): "HOMESEC_MQTT_PASSWORD",
    ("mqtt", "share_group"): "HOMESEC_MQTT_SHARE_GROUP",
}
DEFAULT_DATA_DIR = Path(".homesec-data")

S = TypeVar("S", bound=Section)


class ConfigError(ValueError):
    """The configuration is unusable; the message says which key and why."""


class Config(Section):
    """The core's keys. The loaded configuration is an instance of `config_model()`, which adds one
    section per node plugin; a node reads its own with `config.section(TheSettings)`."""

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Gallery, models, spools, outbox, archive.")
    log: LogSettings = Field(default_factory=LogSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)

    def section(self, model: type[S]) -> S:
        for name, info in type(self).model_fields.items():
            if info.annotation is model:
                value: S = getattr(self, name)
                return value
        raise ConfigError(
            f"no configuration section holds {model.__name__}: is its node package installed "
            "(pip install -e .)?"
        )


@cache
def config_model() -> type[Config]:
    """`Config` with a section for each installed node plugin (unknown keys refused, as everywhere)."""
    sections: dict[str, Any] = {
        p.section: (p.settings, Field(default_factory=p.settings)) for p in node_plugins()
    }
    for p in node_plugins():
        if p.array:  # `[[cameras]]`: several instances in one node
            why = f"Several [{p.section}] in one node: [[{p.array}]] tables, each with the keys of [{p.section}]."
            entries: Any = list[p.settings]  # type: ignore[name-defined]  # a type made at run time
            sections[p.array] = (entries, Field(default_factory=list, description=why))
    return create_model("Config", __base__=Config, **sections)


def node_sections(config: Config, plugin: NodePlugin[S]) -> list[S]:
    """The instances of `plugin`'s node that `config` runs: its `[[array]]` entries, else its section."""
    entries: list[S] = getattr(config, plugin.array, []) if plugin.array else []
    names = [plugin.node_name(entry) for entry in entries]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise ConfigError(f"[[{plugin.array}]]: two entries are {', '.join(twice)} (each needs its own id)")
    return list(entries) or [config.section(plugin.settings)]


def secret_keys() -> dict[tuple[str, str], str]:
    """(section, key) of every secret -> the environment variable that sets it."""
    keys = dict(CORE_SECRETS)
    for plugin in node_plugins():
        keys.update({(plugin.section, key): env for key, env in plugin.secrets.items()})
    return keys


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(path)}: cannot override inside non-table {key!r}")
        tree = node
    tree[path[-1]] = value


def read_secret_file(path: Path, what: str) -> str:
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
    for (section, key), name in secret_keys().items():
        if env.get(name):
            _set_path(tree, [section, key], env[name])
        elif env.get(name + "_FILE"):
            _set_path(tree, [section, key], read_secret_file(Path(env[name + "_FILE"]), name + "_FILE"))
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
        for plugin in node_plugins():
            if plugin.array and tree.get(plugin.array) and plugin.section in tree:
                raise ConfigError(
                    f"[{plugin.section}] and [[{plugin.array}]]: give one of them (every [[{plugin.array}]] "
                    f"table takes all the keys of [{plugin.section}])"
                )
        for (section, key), env_name in secret_keys().items():
            if key in tree.get(section, {}):
                raise ConfigError(
                    f"{section}.{key}: secrets do not belong in the config file; set {env_name} or {key}_file"
                )
    _env_overrides(tree, env)
    try:
        return config_model().model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None


def password_path(config: Config, username: str) -> Path:
    return config.data_dir / "secrets" / f"mqtt-{username}.password"


def node_user(node: str) -> str:
    """The MQTT user of a node (`camera/door` -> `camera-door`): one per node instance."""
    return node.replace("/", "-")


def node_client_id(user: str, password: str) -> str:
    """The one client id the broker accepts for a node user. Derived from its password, so no other
    credential can guess it and take over the node's session."""
    digest = hashlib.sha256(f"homesec client id:{user}:{password}".encode()).hexdigest()
    return f"{user}-{digest[:16]}"


def mqtt_for_role(config: Config, role: Role | str) -> MqttSettings:
    """The MQTT settings a client connects with: its user (`role` names it: a node's own user, or admin
    or viewer), password, and for recognizers the shared group, from the data dir unless given."""
    mqtt = config.mqtt
    username = mqtt.username or str(role)
    password = mqtt.password
    if password is None:
        file = mqtt.password_file or password_path(config, username)
        try:
            exists = file.exists()
        except PermissionError:  # a data dir of another user (docker-compose's `user:`): say so below
            exists = True
        if exists:
            password = SecretStr(read_secret_file(file, "mqtt.password_file"))
        elif mqtt.password_file is not None:
            raise ConfigError(f"mqtt.password_file: {file} does not exist")
    group = mqtt.share_group
    group_file = config.data_dir / "secrets" / "recognizer-group"
    if group is None and username.startswith(f"{Role.RECOGNIZER}") and group_file.exists():
        group = SecretStr(read_secret_file(group_file, "the recognizer group"))
    return mqtt.model_copy(update={"username": username, "password": password, "share_group": group})
