"""Where the notifier finds its Telegram bot token: the section's `token` (the loader fills it from
HOMESEC_TELEGRAM_TOKEN or HOMESEC_TELEGRAM_TOKEN_FILE), else the file named by `token_file`."""

from __future__ import annotations

from homesec.config import ConfigError

from .settings import NotifierSettings


def telegram_token(settings: NotifierSettings) -> str | None:
    """The bot token, or None when none is configured (alerts then go to the outbox)."""
    if settings.token is not None:
        return settings.token.get_secret_value()
    if settings.token_file is None:
        return None
    try:
        return settings.token_file.read_text().strip() or None
    except OSError as exc:
        raise ConfigError(f"notifier.token_file: cannot read {settings.token_file}: {exc.strerror}") from None
