"""The notifier node as the core sees it: its section and secret, its name on the bus."""

from __future__ import annotations

from pathlib import Path

from homesec import contract
from homesec.contract import Role
from homesec.plugins import NodePlugin
from notifier_node.settings import NotifierSettings

NODE = contract.node_name(Role.NOTIFIER, "main")  # one notifier per house


def node_name(settings: NotifierSettings) -> str:
    return NODE


def up_note(settings: NotifierSettings, data_dir: Path) -> str:
    from notifier_node.secrets import telegram_token

    if telegram_token(settings):
        return "alerts go to Telegram"
    return f"alerts go to the outbox {data_dir / 'outbox'} (no Telegram token set)"


PLUGIN = NodePlugin(
    settings=NotifierSettings,
    role=Role.NOTIFIER,
    stage=2,
    node_name=node_name,
    secrets={"token": "HOMESEC_TELEGRAM_TOKEN"},
    up_note=up_note,
)
