"""A small Telegram Bot API client over `requests`, with a documented exception tree.

    TelegramError                 anything that went wrong talking to the Bot API
    ├── RetryableError            network error, timeout, 5xx: try again later
    │   └── RateLimited           429: try again after `retry_after` seconds
    └── PermanentError            400/401/403/404...: retrying the same request will not help

The token is part of every URL (`<base>/bot<token>/<method>`), so it is scrubbed from every error
message this module raises and from urllib3's debug log lines.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import requests

log = logging.getLogger(__name__)

REDACTED = "<token>"
CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096


class TelegramError(Exception):
    def __init__(self, method: str, description: str, error_code: int | None = None) -> None:
        super().__init__(f"{method}: {description}")
        self.method = method
        self.description = description
        self.error_code = error_code


class RetryableError(TelegramError):
    """Network error, timeout or server error: the same request may succeed later."""


class RateLimited(RetryableError):
    def __init__(self, method: str, description: str, retry_after: float) -> None:
        super().__init__(method, description, 429)
        self.retry_after = retry_after


class PermanentError(TelegramError):
    """Telegram refused the request itself (bad chat id, bad token, bot blocked...)."""


class _Redact(logging.Filter):
    """Scrubs a token from records of a third-party logger (urllib3 logs request lines at DEBUG)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.secret in text:
            record.msg, record.args = text.replace(self.secret, REDACTED), None
        return True


def _install_redaction(token: str) -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _Redact) and f.secret == token for f in logger.filters):
        logger.addFilter(_Redact(token))


def utf16_len(text: str) -> int:
    """Telegram counts message lengths in UTF-16 code units (an emoji may count twice)."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 units, marking the cut with an ellipsis."""
    if utf16_len(text) <= limit:
        return text
    kept, used = [], 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > limit - 1:
            break
        kept.append(ch)
        used += width
    return "".join(kept) + "…"


class BotApi:
    """One client per thread (a `requests.Session` is not meant to be shared between threads)."""

    def __init__(
        self,
        token: str,
        base_url: str = "https://api.telegram.org",
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
    ) -> None:
        if not token or "/" in token:
            raise ValueError("a bot token looks like 123456:ABC-DEF... (no '/')")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._session = requests.Session()
        _install_redaction(token)

    def close(self) -> None:
        self._session.close()

    def redact(self, text: str) -> str:
        return text.replace(self._token, REDACTED)

    # -- transport
    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        read_timeout: float | None = None,
    ) -> Any:
        """POST a method; return its `result` or raise a TelegramError subclass."""
        url = f"{self.base_url}/bot{self._token}/{method}"
        timeout = (self.connect_timeout, read_timeout or self.read_timeout)
        try:
            if files:  # multipart: every non-file field is a string; objects travel as JSON text
                data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (params or {}).items()}
                resp = self._session.post(url, data=data, files=files, timeout=timeout)
            else:
                resp = self._session.post(url, json=params or {}, timeout=timeout)
        except requests.Timeout:
            raise RetryableError(method, "timed out") from None
        except requests.RequestException as exc:  # refused, reset, DNS...: the message names the URL
            raise RetryableError(method, self.redact(f"{type(exc).__name__}: {exc}")) from None
        return self._result(method, resp)

    def _result(self, method: str, resp: requests.Response) -> Any:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            kind = RetryableError if resp.status_code >= 500 or resp.status_code == 429 else PermanentError
            raise kind(method, f"HTTP {resp.status_code} without a Bot API answer", resp.status_code)
        if body.get("ok") is True:
            return body.get("result")
        code = body.get("error_code")
        code = code if isinstance(code, int) else resp.status_code
        description = self.redact(str(body.get("description") or f"HTTP {code}"))
        parameters = body.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        if code == 429:
            retry_after = float(parameters.get("retry_after") or 1)
            raise RateLimited(method, description, retry_after)
        if code >= 500:
            raise RetryableError(method, description, code)
        if parameters.get("migrate_to_chat_id"):
            description += f" (the group is now chat {parameters['migrate_to_chat_id']})"
        raise PermanentError(method, description, code)

    # -- methods
    def send_photo(
        self,
        chat_id: int,
        photo: bytes,
        caption: str = "",
        *,
        reply_markup: dict[str, Any] | None = None,
        filename: str = "alert.jpg",
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"chat_id": str(chat_id), "caption": clip(caption, CAPTION_LIMIT)}
        if reply_markup is not None:
            params["reply_markup"] = reply_markup
        result: dict[str, Any] = self.call(
            "sendPhoto", params, files={"photo": (filename, photo, "image/jpeg")}
        )
        return result

    def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"chat_id": chat_id, "text": clip(text, TEXT_LIMIT)}
        if reply_to is not None:
            params["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
        if reply_markup is not None:
            params["reply_markup"] = reply_markup
        result: dict[str, Any] = self.call("sendMessage", params)
        return result

    def edit_caption(
        self, chat_id: int, message_id: int, caption: str, reply_markup: dict[str, Any] | None = None
    ) -> None:
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "message_id": message_id,
            "caption": clip(caption, CAPTION_LIMIT),
        }
        if reply_markup is not None:
            params["reply_markup"] = reply_markup
        self.call("editMessageCaption", params)

    def edit_photo(
        self,
        chat_id: int,
        message_id: int,
        photo: bytes,
        caption: str,
        reply_markup: dict[str, Any] | None = None,
        *,
        filename: str = "alert.jpg",
    ) -> dict[str, Any]:
        """Replace the photo (and caption) of a photo message this bot sent: `editMessageMedia` with an
        InputMediaPhoto whose file is uploaded beside it (`attach://photo`)."""
        media = {"type": "photo", "media": "attach://photo", "caption": clip(caption, CAPTION_LIMIT)}
        params: dict[str, Any] = {"chat_id": str(chat_id), "message_id": str(message_id), "media": media}
        if reply_markup is not None:
            params["reply_markup"] = reply_markup
        result = self.call("editMessageMedia", params, files={"photo": (filename, photo, "image/jpeg")})
        return result if isinstance(result, dict) else {}

    def get_updates(self, offset: int | None, timeout: int) -> list[dict[str, Any]]:
        """Long-poll for updates; passing `offset` = last update_id + 1 confirms the earlier ones."""
        params: dict[str, Any] = {"timeout": timeout, "allowed_updates": ["message", "callback_query"]}
        if offset is not None:
            params["offset"] = offset
        result = self.call("getUpdates", params, read_timeout=timeout + self.read_timeout)
        return [u for u in result or [] if isinstance(u, dict)]

    def get_file(self, file_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("getFile", {"file_id": file_id})
        return result

    def download(self, file_path: str) -> bytes:
        url = f"{self.base_url}/file/bot{self._token}/{file_path.lstrip('/')}"
        try:
            resp = self._session.get(url, timeout=(self.connect_timeout, self.read_timeout))
        except requests.Timeout:
            raise RetryableError("download", "timed out") from None
        except requests.RequestException as exc:
            raise RetryableError("download", self.redact(f"{type(exc).__name__}: {exc}")) from None
        if resp.status_code != 200:
            kind = RetryableError if resp.status_code >= 500 else PermanentError
            raise kind("download", f"HTTP {resp.status_code}", resp.status_code)
        return resp.content

    def download_file(self, file_id: str) -> bytes:
        info = self.get_file(file_id)
        path = info.get("file_path")
        if not path:
            raise PermanentError("getFile", "no file_path (file too big for the Bot API?)")
        return self.download(str(path))

    def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        params: dict[str, Any] = {"callback_query_id": callback_id}
        if text:
            params["text"] = clip(text, 200)
        self.call("answerCallbackQuery", params)
