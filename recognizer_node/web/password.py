"""The household password: an easier sign-in than an API token for the web page only (`/login` takes
either in its `token` field). `homesec web password` sets it; only its scrypt hash is kept, beside the
token store, mode 600. Changing or removing it ends the sessions it opened."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from homesec.contract import to_iso, utc_now
from homesec.files import private_dir, write_atomic
from recognizer_node.http.tokens import Scope, TokenRecord

FILE_NAME = "web-password.json"
MIN_LENGTH = 8
# scrypt at 16 MiB, about 0.1 s a try here: cheap for one sign-in, dear for a guesser (rate-limited too).
N, R, P = 2**14, 8, 1
MARK = "password:"  # a password session's `token_sha256` starts so: never a token's hex digest


class PasswordError(ValueError):
    pass


@dataclass(frozen=True)
class Password:
    """The stored form of the household password."""

    path: Path

    @classmethod
    def beside(cls, token_store: Path) -> Password:
        """The password file in the token store's directory (`<data_dir>/secrets/`)."""
        return cls(token_store.parent / FILE_NAME)

    def set(self, password: str, scope: Scope) -> None:
        if len(password) < MIN_LENGTH:
            raise PasswordError(f"a password needs at least {MIN_LENGTH} characters")
        salt = secrets.token_bytes(16)
        body = {"scope": str(scope), "salt": salt.hex(), "scrypt": _hash(password, salt).hex()}
        private_dir(self.path.parent)
        write_atomic(self.path, json.dumps({**body, "created": to_iso(utc_now())}).encode() + b"\n")

    def remove(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def check(self, password: str) -> TokenRecord | None:
        """The session's record when `password` is the household's, else None (also when none is set)."""
        stored = self._read()
        if stored is None or not password:
            return None
        if not hmac.compare_digest(_hash(password, bytes.fromhex(stored["salt"])).hex(), stored["scrypt"]):
            return None
        return TokenRecord(
            id="password", scope=Scope(stored["scope"]), sha256=MARK + stored["scrypt"],
            name="household password", created=stored["created"],
        )  # fmt: skip

    def alive(self, sha256: str) -> bool:
        """Whether a session opened with the password may go on: the same password is still set."""
        stored = self._read()
        return stored is not None and hmac.compare_digest(MARK + stored["scrypt"], sha256)

    def _read(self) -> dict[str, str] | None:
        try:
            data = json.loads(self.path.read_text())
            return {k: str(data[k]) for k in ("scope", "salt", "scrypt", "created")}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: nobody signs in with it
            return None


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=64 * 1024 * 1024)
