"""A camera's password: read from its secret file, put into a stream URL only at the moment it is opened,
and masked wherever a URL is shown (logs, states, errors)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from camera_node.settings import CameraSettings

# `scheme://user:pass@` or `scheme://user@` anywhere in a text (FFmpeg's messages quote the URL).
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^/@:\s]*)(?::[^/@\s]*)?@", re.I)


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def given(self) -> bool:
        return self.username is not None or self.password is not None


def read_password(configured: Path | None, default: Path | None, key: str) -> str | None:
    """The password in `configured` (which must exist), else in `default` if it exists, else None."""
    path = configured or default
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if configured is not None:
            raise ValueError(f"{key}: {path} does not exist") from None
        return None
    except OSError as exc:
        raise ValueError(f"{key}: cannot read {path}: {exc.strerror}") from None


def load_credentials(settings: CameraSettings, data_dir: Path | None) -> Credentials:
    """The camera's user and password (`camera.password_file`, else
    `<data_dir>/secrets/camera-<id>.password` if it exists); none is fine: an open camera."""
    default = data_dir / "secrets" / f"camera-{settings.id}.password" if data_dir else None
    return Credentials(
        settings.username, read_password(settings.password_file, default, "camera.password_file")
    )


def with_credentials(url: str, creds: Credentials) -> str:
    """`url` with `user:password@` (percent-encoded), as FFmpeg takes them for RTSP and HTTP."""
    if not creds.given:
        return url
    parts = urlsplit(url)
    userinfo = quote(creds.username or "", safe="")
    if creds.password is not None:
        userinfo += ":" + quote(creds.password, safe="")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def mask(text: str) -> str:
    """`text` with every URL's password replaced by `***` (the user stays: it helps and is no secret)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
