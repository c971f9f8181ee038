"""What `homesec up` and `homesec status` do and say for the HTTP API. Cheap to import: the plugin loads
it (the standard library only, no FastAPI)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from homesec.broker import port_open
from recognizer_node.http.settings import HttpSettings
from recognizer_node.http.tokens import Scope, ensure_up_tokens

PROBE_TIMEOUT_S = 2.0
# The address a running API listens on, for `homesec status`: the config it reads may not be the node's
# (an environment override, port 0).
URL_FILE = "http-api.url"


def url_file(data_dir: Path) -> Path:
    return data_dir / URL_FILE


def local_url(settings: HttpSettings) -> str:
    """The API's base URL as seen from this machine (a wildcard address is reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def up_note(settings: HttpSettings, data_dir: Path) -> str | None:
    """Make sure the admin and viewer tokens exist, and say where the API and its admin token are."""
    if not settings.enabled:
        return None
    files = ensure_up_tokens(data_dir)
    if settings.port == 0:
        return f"HTTP API and web page on a free port: `homesec status` shows it (admin token in {files[Scope.ADMIN]})"
    url = local_url(settings)
    if port_open(url.rsplit(":", 1)[0].removeprefix("http://").strip("[]"), settings.port):
        # Said here, not only in the recognizer's log: the node runs on without its API.
        return (
            f"HTTP API off: port {settings.port} is already taken, so the recognizer serves no API and no "
            "web page (set recognizer.http.port, or HOMESEC_RECOGNIZER__HTTP__PORT)"
        )
    return f"web page on {url}/ and HTTP API on {url}/api (admin token in {files[Scope.ADMIN]})"


def api_status(settings: HttpSettings, data_dir: Path) -> dict[str, str]:
    """The API's URL and what `GET /api/health` says: ready, starting, or why it cannot be reached."""
    if not settings.enabled:
        return {"http_api": "off (recognizer.http.enabled = false)"}
    try:
        url = url_file(data_dir).read_text().strip()  # where the running node listens
    except OSError:
        url = local_url(settings)
    return {"http_api": f"{url}/api", "http_health": probe_health(url)}


def probe_health(url: str) -> str:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=PROBE_TIMEOUT_S) as answer:
            return str(json.load(answer).get("status", "?"))
    except urllib.error.HTTPError as exc:  # 503 while the node starts or stops, with the same body
        try:
            return str(json.load(exc).get("status", exc.code))
        except ValueError:
            return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable ({reason})"
