"""What `homesec up` does and says for the HTTP API. Cheap to import: the plugin loads it."""

from __future__ import annotations

from pathlib import Path

from recognizer_node.http.settings import HttpSettings
from recognizer_node.http.tokens import Scope, ensure_up_tokens


def up_note(settings: HttpSettings, data_dir: Path) -> str | None:
    """Make sure the admin and viewer tokens exist, and say where the API and its admin token are."""
    if not settings.enabled:
        return None
    files = ensure_up_tokens(data_dir)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"HTTP API on http://{host}:{settings.port}/api (admin token in {files[Scope.ADMIN]})"
