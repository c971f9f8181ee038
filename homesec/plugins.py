"""Node plugins: how a node package adds its config section, secrets and commands to the core.

Each node package declares one `NodePlugin` under the `homesec.nodes` entry-point group (pyproject.toml).
The core finds them through importlib.metadata, so it never imports a node package. A plugin's module
imports only the node's settings (pydantic and the stdlib): discovery stays cheap, and whatever is heavy
is imported inside the callbacks, when they run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

from homesec.contract import Role
from homesec.settings import Section

ENTRY_POINT_GROUP = "homesec.nodes"

S = TypeVar("S", bound=Section)
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass(frozen=True)
class NodePlugin(Generic[S]):
    settings: type[S]
    role: Role
    """The MQTT user the node connects as."""
    stage: int
    """Place in the pipeline: 0 for a source of events, higher for the nodes that consume them.
    `homesec up` starts the highest first, so no node publishes before its consumer has subscribed;
    the configuration reference lists the sections in this order."""
    node_name: Callable[[S], str]
    """The node's name on the bus (`camera/door`), from its section."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Keys of the section that never come from the file -> the environment variable that sets them
    (`<VAR>_FILE` names a file holding the value)."""
    add_commands: Callable[[SubParsers], None] | None = None
    """Adds the node's local subcommands to the `homesec` command line."""
    up_env: Callable[[S, Path | None, dict[str, str]], None] | None = None
    """Adjusts the environment `homesec up` gives the nodes, given its `--demo-dir` (or None)."""
    up_note: Callable[[S, Path], str | None] | None = None
    """What `homesec up` tells the user about this node at start, given the data dir."""
    status: Callable[[S, Path], dict[str, str]] | None = None
    """What `homesec status` adds about this node beyond its MQTT state (name -> value), given the data
    dir: e.g. the recognizer's HTTP API and its health."""
    persistent_session: bool = True
    """Whether the broker keeps the node's session (subscriptions, queued messages) while it is away.
    Off for a node whose share of a shared subscription must go to the live members instead."""
    section: str = ""
    """The config section (`[camera]`) and the prefix of its environment overrides; default: the role."""
    array: str = ""
    """An array of tables of the same settings (`[[cameras]]`), for several instances in one node
    process: when it lists any, they are the node's instances instead of its single section."""
    program: str = ""
    """The module `homesec up` runs as `python -m <program>`; default: `<section>_node`."""

    def __post_init__(self) -> None:
        # frozen: the defaults that follow from other fields are set the way dataclasses set fields
        if not self.section:
            object.__setattr__(self, "section", str(self.role))
        if not self.program:
            object.__setattr__(self, "program", f"{self.section}_node")


class PluginError(RuntimeError):
    """An entry point of the `homesec.nodes` group is not a usable node plugin."""


@cache
def node_plugins() -> tuple[NodePlugin[Any], ...]:
    """The installed node plugins, sources of events first."""
    found: dict[str, NodePlugin[Any]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        plugin = ep.load()
        if not isinstance(plugin, NodePlugin):
            raise PluginError(f"entry point {ep.name} = {ep.value!r} is not a NodePlugin")
        if plugin.section in found:
            raise PluginError(f"two node plugins claim the [{plugin.section}] section")
        found[plugin.section] = plugin
    return tuple(sorted(found.values(), key=lambda p: (p.stage, p.section)))


def plugin_for(role: Role) -> NodePlugin[Any] | None:
    return next((p for p in node_plugins() if p.role == role), None)
