"""The recognizer node as the core sees it: its section, its name on the bus, its local commands."""

from __future__ import annotations

from pathlib import Path

from homesec import contract
from homesec.contract import Role
from homesec.plugins import NodePlugin, SubParsers
from recognizer_node.settings import RecognizerSettings


def node_name(settings: RecognizerSettings) -> str:
    return contract.node_name(Role.RECOGNIZER, settings.instance)


def add_commands(subparsers: SubParsers) -> None:
    """`homesec models ...`, `homesec faces ...` (their handlers import numpy and onnxruntime late) and
    `homesec api token ...` and `homesec web password`."""
    from recognizer_node.cli import add_commands as add
    from recognizer_node.http.cli import add_commands as add_api
    from recognizer_node.web.cli import add_commands as add_web

    add(subparsers)
    add_api(subparsers)
    add_web(subparsers)


def up_note(settings: RecognizerSettings, data_dir: Path) -> str | None:
    """The HTTP API's address and admin token (made on the first `homesec up`)."""
    from recognizer_node.http.up import up_note as http_note

    return http_note(settings.http, data_dir)


def status(settings: RecognizerSettings, data_dir: Path) -> dict[str, str]:
    """The HTTP API's URL and health, for `homesec status`."""
    from recognizer_node.http.up import api_status

    return api_status(settings.http, data_dir)


PLUGIN = NodePlugin(
    settings=RecognizerSettings,
    role=Role.RECOGNIZER,
    stage=1,
    node_name=node_name,
    add_commands=add_commands,
    up_note=up_note,
    status=status,
    # A replica that is down must not keep receiving its round-robin share of the snapshots: with a
    # persistent session the broker queues it for the replica's return. Without one, the live replicas
    # get everything, and the camera publishes again what a dying replica took with it. Training and
    # gallery requests are asked with a timeout and answered, so none waits in a queue either.
    persistent_session=False,
)
