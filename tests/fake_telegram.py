"""A local stand-in for the Telegram Bot API: a real HTTP server (pytest-httpserver) that checks the
shape of every request it gets (multipart fields, JSON bodies, JPEG photos, caption length), records
it, and can be told to answer 429/500/400, to hang, or to be down. Used by the notifier's tests and
by bench/e2e.py.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.helpers import wait_until

TOKEN = "123456:TEST-secret_token"
CHAT = 4242
HANG_S = 3.0

Fault = int | tuple[int, float] | str  # 500 / 400 / 403 | (429, retry_after) | "hang"


@dataclass
class Call:
    method: str
    fields: dict[str, Any]
    files: dict[str, bytes]
    status: int
    at: float
    result: Any = None  # what the fake answered (e.g. the sent message, with its message_id)


def jpeg_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="JPEG")
    return buf.getvalue()


class _Server(HTTPServer):
    """Stops within a few tens of milliseconds, not the half second of serve_forever's default poll."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)


class FakeTelegram:
    def __init__(self, port: int = 0) -> None:
        # One INFO line per request, written by the server's threads, some after the test is over.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.server = _Server(host="127.0.0.1", port=port, threaded=True)
        self.server.expect_request(re.compile(r"^/bot[^/]*/\w+$"), method="POST").respond_with_handler(
            self._api
        )
        self.server.expect_request(re.compile(r"^/file/bot[^/]*/.+$"), method="GET").respond_with_handler(
            self._file
        )
        self.chats = {CHAT}
        self.calls: list[Call] = []
        self.shape_errors: list[str] = []
        self.faults: dict[str, list[Fault]] = {}
        self.down = False  # every API call answers 500 while set
        self.hang_s = HANG_S
        self.hung_chats: set[int] = set()  # every call naming one of these chats hangs
        self.files: dict[str, bytes] = {}
        self.captions: dict[tuple[int, int], str] = {}  # (chat, message_id) of each photo sent -> its caption
        self.photos: dict[tuple[int, int], bytes] = {}  # (chat, message_id) -> the JPEG it shows now
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1000
        self._cond = threading.Condition()
        self._closing = False

    # -- control
    def start(self) -> FakeTelegram:
        self.server.start()
        return self

    def stop(self, *, close_socket: bool = False) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        wsgi = self.server.server
        self.server.stop()
        if close_socket and wsgi is not None:
            wsgi.server_close()  # connections are refused, not left waiting in the backlog

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def fail(self, method: str, *faults: Fault) -> None:
        with self._cond:
            self.faults.setdefault(method, []).extend(faults)

    def push(self, **update: Any) -> int:
        """Queue an update (message=... or callback_query=...); returns its update_id."""
        with self._cond:
            update["update_id"] = self._next_update
            self._next_update += 1
            self._updates.append(update)
            self._cond.notify_all()
            return int(update["update_id"])

    def message(self, text: str = "", chat: int = CHAT, **extra: Any) -> dict[str, Any]:
        msg = self._new_message(chat)
        msg["from"] = {"id": chat, "is_bot": False, "first_name": "Test", "username": f"user{chat}"}
        if text:
            msg["text"] = text
        msg.update(extra)
        return msg

    def add_photo(self, data: bytes, file_id: str = "photo-big") -> list[dict[str, Any]]:
        """Store `data` for getFile + download; returns a `photo` size list (largest last)."""
        self.files[file_id] = data
        self.files["photo-thumb"] = jpeg_bytes(8, 6)
        return [
            {"file_id": "photo-thumb", "file_unique_id": "t", "width": 8, "height": 6},
            {"file_id": file_id, "file_unique_id": "b", "width": 640, "height": 480},
        ]

    def ok_calls(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.status == 200]

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """`wait_until`, saying which calls the fake got when it times out."""
        try:
            wait_until(predicate, timeout)
        except AssertionError:
            raise AssertionError(f"timed out; calls: {[(c.method, c.status) for c in self.calls]}") from None

    def texts(self, chat: int = CHAT) -> list[str]:
        return [
            str(c.fields.get("text")) for c in self.ok_calls("sendMessage") if c.fields.get("chat_id") == chat
        ]

    # -- HTTP side
    def _api(self, request: Request) -> Response:
        token, method = request.path.split("/")[1][3:], request.path.split("/")[2]
        if request.files:
            fields: dict[str, Any] = request.form.to_dict()
            files = {k: f.read() for k, f in request.files.items()}
        else:
            fields, files = request.get_json(silent=True) or {}, {}
        status, body = self._respond(token, method, fields, files)
        with self._cond:
            self.calls.append(Call(method, fields, files, status, time.monotonic(), body.get("result")))
        return Response(json.dumps(body), status=status, content_type="application/json")

    @staticmethod
    def _error(code: int, description: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return code, body

    def _respond(
        self, token: str, method: str, fields: dict[str, Any], files: dict[str, bytes]
    ) -> tuple[int, dict[str, Any]]:
        if token != TOKEN:
            return self._error(401, "Unauthorized")
        with self._cond:
            fault = self.faults[method].pop(0) if self.faults.get(method) else None
        if (
            fault == "hang" or _chat_of(fields) in self.hung_chats
        ):  # until the client gave up, or the fake stops
            with self._cond:
                self._cond.wait_for(lambda: self._closing, self.hang_s)
            return self._error(504, "Gateway Timeout")
        if isinstance(fault, tuple):
            return self._error(429, f"Too Many Requests: retry after {fault[1]}", retry_after=fault[1])
        if isinstance(fault, int):
            return self._error(fault, f"fake fault {fault}")
        if self.down:
            return self._error(500, "Internal Server Error")
        handler = getattr(self, "_m_" + method, None)
        if handler is None:
            return self._error(404, "Not Found")
        try:
            return 200, {"ok": True, "result": handler(fields, files)}
        except _Refuse as exc:
            return self._error(exc.code, exc.text)

    def _chat(self, fields: dict[str, Any]) -> int:
        chat = int(fields.get("chat_id", 0))
        if chat not in self.chats:
            raise _Refuse(400, "Bad Request: chat not found")
        return chat

    def _shape(self, ok: bool, problem: str) -> None:
        if not ok:
            self.shape_errors.append(problem)
            raise _Refuse(400, f"Bad Request: {problem}")

    def _new_message(self, chat: int, **content: Any) -> dict[str, Any]:
        with self._cond:
            self._next_message += 1
            mid = self._next_message
        return {
            "message_id": mid,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private"},
            **content,
        }

    def _m_sendPhoto(self, fields: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        photo = files.get("photo", b"")
        self._shape(
            photo.startswith(b"\xff\xd8") and len(photo) <= 10 * 1024 * 1024, "photo must be a JPEG file"
        )
        self._shape(len(fields.get("caption", "")) <= 1024, "caption longer than 1024")
        self._markup(fields)
        chat = self._chat(fields)
        msg = self._new_message(chat, photo=[{"file_id": "sent", "width": 64, "height": 48}])
        with self._cond:
            self.captions[(chat, msg["message_id"])] = str(fields.get("caption", ""))
            self.photos[(chat, msg["message_id"])] = photo
        return msg

    def _markup(self, fields: dict[str, Any]) -> None:
        """An inline keyboard, JSON text in a multipart form (an object in a JSON body)."""
        if "reply_markup" not in fields:
            return
        markup = fields["reply_markup"]
        markup = json.loads(markup) if isinstance(markup, str) else markup
        for row in markup.get("inline_keyboard", []):
            for button in row:
                self._shape(1 <= len(button["callback_data"].encode()) <= 64, "callback_data not 1-64 bytes")

    def _m_editMessageMedia(self, fields: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        """As the Bot API documents it: `media` a JSON-serialized InputMediaPhoto whose `media` is
        `attach://<name>` for a file uploaded under <name> in the same multipart request (or a file_id /
        URL); its caption 0-1024; only a photo message this bot sent can be edited (it is then that
        message, returned)."""
        try:
            media = json.loads(fields.get("media", ""))
        except ValueError:
            media = None
        self._shape(
            isinstance(media, dict) and media.get("type") == "photo", "media must be an InputMediaPhoto"
        )
        assert isinstance(media, dict)
        ref = str(media.get("media", ""))
        self._shape(ref.removeprefix("attach://") in files, "media must be attach://<a file of this request>")
        photo = files[ref.removeprefix("attach://")]
        self._shape(photo.startswith(b"\xff\xd8") and len(photo) <= 10 * 1024 * 1024, "photo must be a JPEG")
        caption = media.get("caption", "")
        self._shape(isinstance(caption, str) and len(caption) <= 1024, "caption longer than 1024")
        self._markup(fields)
        self._shape(str(fields.get("message_id", "")).isdigit(), "message_id must be an integer")
        key = (self._chat(fields), int(fields["message_id"]))
        with self._cond:
            if key not in self.photos:
                raise _Refuse(400, "Bad Request: message to edit not found")
            self.captions[key], self.photos[key] = caption, photo
        return {
            "message_id": key[1],
            "chat": {"id": key[0], "type": "private"},
            "photo": [{"file_id": f"edited-{key[1]}", "width": 64, "height": 48}],
            "caption": caption,
        }

    def _m_sendMessage(self, fields: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        self._shape(isinstance(fields.get("text"), str) and 1 <= len(fields["text"]) <= 4096, "bad text")
        return self._new_message(self._chat(fields), text=fields["text"])

    def _m_editMessageCaption(self, fields: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        """As Telegram: only a photo this bot sent, and only to a caption that differs."""
        caption = fields.get("caption", "")
        self._shape(isinstance(caption, str) and len(caption) <= 1024, "caption longer than 1024")
        self._shape(isinstance(fields.get("message_id"), int), "message_id must be an integer")
        key = (self._chat(fields), fields["message_id"])
        with self._cond:
            if key not in self.captions:
                raise _Refuse(400, "Bad Request: message to edit not found")
            if self.captions[key] == caption:
                raise _Refuse(400, "Bad Request: message is not modified")
            self.captions[key] = caption
        return {"message_id": key[1], "chat": {"id": key[0], "type": "private"}, "caption": caption}

    def _m_answerCallbackQuery(self, fields: dict[str, Any], files: dict[str, bytes]) -> bool:
        self._shape(bool(fields.get("callback_query_id")), "callback_query_id missing")
        return True

    def _m_getFile(self, fields: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        file_id = str(fields.get("file_id"))
        if file_id not in self.files:
            raise _Refuse(400, "Bad Request: invalid file_id")
        return {"file_id": file_id, "file_unique_id": file_id, "file_path": f"photos/{file_id}.jpg"}

    def _m_getUpdates(self, fields: dict[str, Any], files: dict[str, bytes]) -> list[dict[str, Any]]:
        offset, timeout = fields.get("offset"), min(float(fields.get("timeout", 0)), 5.0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset is not None:  # confirms (forgets) everything before it
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._closing and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return list(self._updates)

    def _file(self, request: Request) -> Response:
        match = re.match(r"^/file/bot([^/]*)/photos/(.+)\.jpg$", request.path)
        if not match or match.group(1) != TOKEN or match.group(2) not in self.files:
            return Response("not found", status=404)
        with self._cond:
            self.calls.append(Call("download", {"path": request.path}, {}, 200, time.monotonic()))
        return Response(self.files[match.group(2)], content_type="image/jpeg")


def _chat_of(fields: dict[str, Any]) -> int | None:
    try:
        return int(fields["chat_id"])
    except (KeyError, TypeError, ValueError):
        return None


class _Refuse(Exception):
    def __init__(self, code: int, text: str) -> None:
        self.code, self.text = code, text


def serve_fake(*extra_chats: int) -> Iterator[FakeTelegram]:
    """The body of a `fake` fixture: a started fake that also allows `extra_chats`; after the test
    it is stopped (unless the test did) and must have seen only well-shaped requests."""
    tg = FakeTelegram().start()
    tg.chats.update(extra_chats)
    yield tg
    if tg.server.is_running():
        tg.stop()
    assert tg.shape_errors == []


def say(fake: FakeTelegram, text: str, chat: int = CHAT, **extra: Any) -> dict[str, Any]:
    """A user writes `text` to the bot; returns the message as the bot will get it."""
    msg = fake.message(text, chat=chat, **extra)
    fake.push(message=msg)
    return msg


def the_first_alert(fake: FakeTelegram) -> dict[str, Any]:
    """The first alert photo the bot sent, as `reply_to_message` of a user's reply shows it (Telegram
    leaves out the photo sizes there when the bot's own photo is replied to)."""
    fake.wait(lambda: bool(fake.ok_calls("sendPhoto")))  # sent by the delivery thread, soon after the ack
    message_id = fake.ok_calls("sendPhoto")[0].result["message_id"]
    return {"message_id": message_id, "chat": {"id": CHAT}, "photo": []}


def wait_text(fake: FakeTelegram, needle: str, chat: int = CHAT) -> str:
    """The first text the bot sent to `chat` containing `needle` (waits for it)."""
    fake.wait(lambda: any(needle in t for t in fake.texts(chat)))
    return next(t for t in fake.texts(chat) if needle in t)
