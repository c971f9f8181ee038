"""The Home Assistant bridge as the core sees it: its section, its name on the bus."""

from __future__ import annotations

from homeassistant_node.settings import HomeAssistantSettings
from homesec import contract
from homesec.contract import Role
from homesec.plugins import NodePlugin

NODE = contract.node_name(Role.HA_BRIDGE, "main")  # one bridge per house


def node_name(settings: HomeAssistantSettings) -> str:
    return NODE


PLUGIN = NodePlugin(
    settings=HomeAssistantSettings,
    role=Role.HA_BRIDGE,
    # A consumer of every node's state: `homesec up` starts it before the nodes it listens to.
    stage=3,
    node_name=node_name,
    section="homeassistant",
    program="homeassistant_node",
)
