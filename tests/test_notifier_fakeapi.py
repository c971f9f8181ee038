"""The notifier's Bot API client, on the wire, against the local Telegram stand-in
(tests/fake_telegram.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from homesec.broker import free_port
from notifier_node.telegram import BotApi, PermanentError, RateLimited, RetryableError
from tests.fake_telegram import CHAT, TOKEN, FakeTelegram, jpeg_bytes, serve_fake


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    yield from serve_fake()


def client(tg: FakeTelegram, token: str = TOKEN, read_timeout: float = 1.0) -> BotApi:
    return BotApi(token, tg.url, connect_timeout=1.0, read_timeout=read_timeout)


# ------------------------------------------------------------------------------ the client, on the wire
def test_send_photo_is_multipart_with_chat_caption_markup_and_the_jpeg(fake: FakeTelegram) -> None:
    photo = jpeg_bytes()
    markup = {"inline_keyboard": [[{"text": "Enroll", "callback_data": "enroll:abc"}]]}
    msg = client(fake).send_photo(CHAT, photo, "x" * 3000, reply_markup=markup)
    assert msg["chat"]["id"] == CHAT
    (call,) = fake.ok_calls("sendPhoto")
    assert call.fields["chat_id"] == str(CHAT)
    assert call.files["photo"] == photo
    assert len(call.fields["caption"]) == 1024 and call.fields["caption"].endswith("…")
    assert json.loads(call.fields["reply_markup"]) == markup


def test_send_message_and_callback_answer_are_json(fake: FakeTelegram) -> None:
    api = client(fake)
    api.send_message(CHAT, "hello", reply_to=7, reply_markup={"force_reply": True})
    api.answer_callback("cb-1", "ok")
    send, answer = fake.ok_calls("sendMessage")[0], fake.ok_calls("answerCallbackQuery")[0]
    assert send.fields == {
        "chat_id": CHAT,
        "text": "hello",
        "reply_parameters": {"message_id": 7, "allow_sending_without_reply": True},
        "reply_markup": {"force_reply": True},
    }
    assert answer.fields == {"callback_query_id": "cb-1", "text": "ok"}


def test_error_answers_map_onto_the_exception_tree(fake: FakeTelegram) -> None:
    api = client(fake)
    fake.fail("sendMessage", (429, 7), 500, 403)
    with pytest.raises(RateLimited) as limited:
        api.send_message(CHAT, "a")
    assert limited.value.retry_after == 7
    with pytest.raises(RetryableError) as server:
        api.send_message(CHAT, "a")
    assert not isinstance(server.value, RateLimited) and server.value.error_code == 500
    with pytest.raises(PermanentError):
        api.send_message(CHAT, "a")
    with pytest.raises(PermanentError, match="chat not found"):
        api.send_message(999, "a")
    with pytest.raises(PermanentError, match="Unauthorized"):
        client(fake, token="999:wrong").send_message(CHAT, "a")


def test_a_hung_server_is_a_retryable_timeout(fake: FakeTelegram) -> None:
    fake.fail("sendMessage", "hang")
    with pytest.raises(RetryableError, match="timed out"):
        client(fake, read_timeout=0.3).send_message(CHAT, "a")


def test_the_token_never_shows_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = BotApi(TOKEN, f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)  # nothing listens: refused
    with pytest.raises(RetryableError) as refused:
        api.send_message(CHAT, "a")
    assert TOKEN not in str(refused.value) and "<token>" in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    tg = FakeTelegram().start()
    try:
        BotApi(TOKEN, tg.url).send_message(CHAT, "logged at DEBUG by urllib3")
    finally:
        tg.stop()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")  # the fake's own log
    assert "sendMessage" in ours  # urllib3 did log the request line...
    assert TOKEN not in ours  # ...without the token


def test_updates_offset_confirms_and_files_download(fake: FakeTelegram) -> None:
    api = client(fake)
    first = fake.push(message=fake.message("/help"))
    second = fake.push(message=fake.message("/status"))
    assert [u["update_id"] for u in api.get_updates(None, 0)] == [first, second]
    assert [u["update_id"] for u in api.get_updates(second, 0)] == [second]
    assert api.get_updates(second + 1, 0) == []
    photo = jpeg_bytes(32, 32)
    fake.add_photo(photo, "f1")
    assert api.download_file("f1") == photo
    with pytest.raises(PermanentError, match="invalid file_id"):
        api.download_file("nope")
