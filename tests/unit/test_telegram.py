"""Telegram: the secret-token check, Update conversion, send calls, Bot API answer classification, backoff."""

import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omni_contracts import Attachment, MessageOutgoing, UnifiedMessage
from omni_ingress.polling import Backoff, conflict_detail
from omni_providers import (
    AttachmentSource,
    Channel,
    InboundRequest,
    ProfileSource,
    Registrar,
    WebhookRejected,
    delivery_policy,
)
from omni_providers.signatures import TELEGRAM_SECRET_HEADER, verify_secret_token
from omni_providers.telegram import PollingConflict, TelegramProvider, generate_secret_token, send_calls
from omni_providers.telegram.botapi import BotApi, read_answer
from omni_runtime.errors import PermanentError, RetryLater
from omni_runtime.settings import Settings

TOKEN = "123456789:AAH-secret_part-of-the-token"
CHANNEL = Channel(
    id="c1",
    name="Support bot",
    provider="telegram",
    source="123456789",
    queue_id="q",
    settings={"bot_token": TOKEN, "secret_token": "s3cret_Token-1"},
)
PROVIDER = TelegramProvider("telegram", Settings(telegram_api_url="http://127.0.0.1:9/telegram"))
ANN = {"id": 1111, "is_bot": False, "first_name": "Ann", "last_name": "Customer", "username": "ann"}
PRIVATE = {"id": 1111, "first_name": "Ann", "last_name": "Customer", "username": "ann", "type": "private"}


def update(update_id: int = 10, **message: Any) -> dict[str, Any]:
    """A real-format Update around a `message` (the Bot API's example shape)."""
    return {
        "update_id": update_id,
        "message": {"message_id": 55, "from": ANN, "chat": PRIVATE, "date": 1_767_000_000, **message},
    }


def convert(payload: Any) -> list[UnifiedMessage]:
    return PROVIDER.convert(CHANNEL, payload)


class Channels:
    """An in-memory ChannelLookup holding CHANNEL."""

    async def by_id(self, provider: str, channel_id: str) -> Channel | None:
        return CHANNEL if (provider, channel_id) == ("telegram", CHANNEL.id) else None

    async def by_source(self, provider: str, source: str) -> Channel | None:
        return None

    async def of_provider(self, provider: str) -> list[Channel]:
        return [CHANNEL]


def test_the_adapter_plays_every_role_and_states_telegrams_rate_limits() -> None:
    assert isinstance(PROVIDER, Registrar)
    assert isinstance(PROVIDER, ProfileSource)
    assert isinstance(PROVIDER, AttachmentSource)
    policy = delivery_policy(PROVIDER)
    assert (policy.per_chat_interval, policy.per_channel_rate, policy.reply_window) == (1.0, 30.0, None)


# The secret token


def test_secret_token_is_compared_exactly() -> None:
    assert verify_secret_token("s3cret_Token-1", "s3cret_Token-1")
    assert not verify_secret_token("s3cret_Token-1", "s3cret_Token-2")
    assert not verify_secret_token("s3cret_Token-1", "s3cret_Token-1 ")
    assert not verify_secret_token("s3cret_Token-1", None)
    assert not verify_secret_token("", "")


async def test_receive_checks_the_channel_then_the_header_then_the_body() -> None:
    body = json.dumps(update(text="hi")).encode()

    def request(headers: dict[str, str], channel_id: str | None = "c1", raw: bytes = body) -> InboundRequest:
        return InboundRequest(raw, headers, "http://ingress/webhooks/telegram/c1", channel_id=channel_id)

    good = {TELEGRAM_SECRET_HEADER.lower(): "s3cret_Token-1"}
    [message] = (await PROVIDER.receive(request(good), Channels())).messages
    assert message.text == "hi"
    for headers, channel_id, status in (
        ({}, "c1", 401),
        ({TELEGRAM_SECRET_HEADER: "wrong"}, "c1", 401),
        (good, "other", 404),
        (good, None, 404),
    ):
        with pytest.raises(WebhookRejected) as caught:
            await PROVIDER.receive(request(headers, channel_id), Channels())
        assert caught.value.status == status
    # Authenticity comes first: a malformed body without the secret is a 401, with it a 400.
    with pytest.raises(WebhookRejected) as unauthenticated:
        await PROVIDER.receive(request({}, raw=b"{nope"), Channels())
    assert unauthenticated.value.status == 401
    with pytest.raises(WebhookRejected) as malformed:
        await PROVIDER.receive(request(good, raw=b"{nope"), Channels())
    assert malformed.value.status == 400


def test_generated_secret_tokens_are_what_set_webhook_accepts() -> None:
    tokens = {generate_secret_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,256}", t) and len(t) >= 32 for t in tokens)


# Conversion


def test_text_message_becomes_a_unified_message() -> None:
    [message] = convert(update(text="hello"))
    assert message.type == "text" and message.text == "hello"
    assert message.provider_message_id == "1111:55"
    assert (message.sender, message.sender_name, message.recipient) == ("1111", "Ann Customer", "123456789")
    assert message.sent_at.timestamp() == 1_767_000_000 and message.sent_at.tzinfo is not None
    assert message.channel_id == "c1" and message.provider == "telegram"


def test_photo_keeps_the_largest_size_and_the_caption() -> None:
    sizes = [
        {"file_id": "small", "file_unique_id": "a", "width": 90, "height": 67, "file_size": 1000},
        {"file_id": "large", "file_unique_id": "c", "width": 1280, "height": 960, "file_size": 90000},
        {"file_id": "medium", "file_unique_id": "b", "width": 320, "height": 240, "file_size": 9000},
    ]
    [message] = convert(update(photo=sizes, caption="my receipt"))
    assert (message.type, message.text) == ("image", "my receipt")
    assert message.attachments == (Attachment(provider_file_id="large", content_type="image/jpeg", size=90000),)


@pytest.mark.parametrize(
    ("field", "payload", "kind", "content_type", "file_name"),
    [
        (
            "video",
            {"file_id": "v", "width": 1, "height": 1, "duration": 3, "mime_type": "video/mp4"},
            "video",
            "video/mp4",
            None,
        ),
        (
            "audio",
            {"file_id": "a", "duration": 3, "mime_type": "audio/mpeg", "file_name": "song.mp3"},
            "audio",
            "audio/mpeg",
            "song.mp3",
        ),
        ("voice", {"file_id": "o", "duration": 2}, "audio", "audio/ogg", None),
        (
            "document",
            {"file_id": "d", "file_name": "invoice.pdf", "mime_type": "application/pdf"},
            "file",
            "application/pdf",
            "invoice.pdf",
        ),
        (
            "sticker",
            {"file_id": "s", "width": 512, "height": 512, "is_animated": False, "is_video": False},
            "sticker",
            "image/webp",
            None,
        ),
        (
            "sticker",
            {"file_id": "s", "width": 512, "height": 512, "is_animated": True, "is_video": False},
            "sticker",
            "application/x-tgsticker",
            None,
        ),
    ],
)
def test_media_messages_carry_their_file_id(
    field: str, payload: dict[str, Any], kind: str, content_type: str, file_name: str | None
) -> None:
    content: dict[str, Any] = {field: payload}
    [message] = convert(update(10, **content))
    assert message.type == kind
    [attachment] = message.attachments
    assert (attachment.provider_file_id, attachment.content_type, attachment.file_name) == (
        payload["file_id"],
        content_type,
        file_name,
    )
    assert attachment.url is None


def test_location_is_kept_as_coordinates() -> None:
    [message] = convert(update(location={"latitude": 52.37, "longitude": 4.89}))
    assert message.type == "location" and message.location is not None
    assert (message.location.latitude, message.location.longitude) == (52.37, 4.89)


def test_group_messages_are_the_groups_and_named_after_it() -> None:
    group = {"id": -100123, "title": "Customers of Acme", "type": "supergroup"}
    [message] = convert(update(chat=group, text="anyone?"))
    assert (message.sender, message.sender_name) == ("-100123", "Customers of Acme")
    assert message.provider_message_id == "-100123:55"


@pytest.mark.parametrize(
    "payload",
    [
        {"update_id": 1, "edited_message": update()["message"] | {"text": "edited"}},
        {"update_id": 2, "callback_query": {"id": "9", "from": ANN, "data": "yes"}},
        {"update_id": 3, "my_chat_member": {"chat": PRIVATE}},
        update(poll={"id": "p", "question": "?"}),
        update(contact={"phone_number": "+100", "first_name": "Bob"}),
        update(text=""),
    ],
)
def test_other_updates_are_acknowledged_and_dropped(payload: dict[str, Any]) -> None:
    assert convert(payload) == []


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "update",
        {},
        {"update_id": "10", "message": update()["message"]},
        {"update_id": True},
        {"update_id": 1, "message": "hi"},
        {"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "no chat"}},
        update(chat={"id": 10**30, "type": "private"}, text="huge id"),
        update(date=10**20, text="far future"),
        update(text="\ud800"),
        update(location={"latitude": 91, "longitude": 0}),
        update(photo=[{"width": 1, "height": 1}]),
    ],
)
def test_malformed_updates_are_rejected_with_400(payload: Any) -> None:
    with pytest.raises(WebhookRejected) as caught:
        convert(payload)
    assert caught.value.status == 400


# Sending


def outgoing(text: str | None, *attachments: Attachment) -> MessageOutgoing:
    return MessageOutgoing(
        message_id="m1",
        chat_id="chat",
        channel_id="c1",
        provider="telegram",
        recipient="1111",
        text=text,
        attachments=attachments,
    )


def test_text_goes_out_as_send_message() -> None:
    assert send_calls(outgoing("Hello Ann")) == [("sendMessage", {"text": "Hello Ann"})]


def test_attachments_go_out_by_url_with_the_text_as_caption() -> None:
    calls = send_calls(
        outgoing(
            "here you go",
            Attachment(url="https://files.example/p.png", content_type="image/png"),
            Attachment(url="https://files.example/manual.pdf"),
            Attachment(provider_file_id="AgAD-file", content_type="video/mp4"),
        )
    )
    assert calls == [
        ("sendPhoto", {"photo": "https://files.example/p.png", "caption": "here you go"}),
        ("sendDocument", {"document": "https://files.example/manual.pdf"}),
        ("sendVideo", {"video": "AgAD-file"}),
    ]


def test_text_too_long_for_a_caption_goes_first_on_its_own() -> None:
    long_text = "x" * 1025
    calls = send_calls(outgoing(long_text, Attachment(url="https://f/a.mp3")))
    assert calls == [("sendMessage", {"text": long_text}), ("sendAudio", {"audio": "https://f/a.mp3"})]


@pytest.mark.parametrize("message", [outgoing(None), outgoing("  "), outgoing(None, Attachment(file_name="x.png"))])
def test_unsendable_replies_are_refused(message: MessageOutgoing) -> None:
    with pytest.raises(PermanentError):
        send_calls(message)


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_bot_api_answers_are_classified() -> None:
    assert read_answer(answer(200, {"ok": True, "result": {"message_id": 7}}), "sendMessage") == {"message_id": 7}
    limited = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    with pytest.raises(RetryLater) as retry:
        read_answer(answer(429, limited), "sendMessage")
    assert retry.value.retry_after == 7 and "Too Many Requests" in str(retry.value)
    with pytest.raises(RetryLater) as header_only:
        read_answer(answer(429, {"ok": False, "error_code": 429}, {"Retry-After": "3"}), "sendMessage")
    assert header_only.value.retry_after == 3
    with pytest.raises(RetryLater):
        read_answer(answer(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}), "sendMessage")
    with pytest.raises(RetryLater):
        read_answer(httpx.Response(200, text="<html>proxy</html>"), "sendMessage")
    blocked = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    with pytest.raises(PermanentError, match="bot was blocked by the user"):
        read_answer(answer(403, blocked), "sendMessage")
    moved = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded",
        "parameters": {"migrate_to_chat_id": -1001},
    }
    with pytest.raises(PermanentError, match="now chat -1001"):
        read_answer(answer(400, moved), "sendMessage")
    conflict = {
        "ok": False,
        "error_code": 409,
        "description": "Conflict: can't use getUpdates method while webhook is active",
    }
    with pytest.raises(PollingConflict, match="webhook is active"):
        read_answer(answer(409, conflict), "getUpdates")


async def test_network_errors_retry_later_without_the_token_in_the_reason() -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(RetryLater) as caught:
            await BotApi("http://127.0.0.1:9").call(http, CHANNEL, "sendMessage", {"chat_id": 1, "text": "x"})
    assert "sendMessage" in str(caught.value)
    assert "secret_part" not in str(caught.value) and caught.value.__cause__ is None


async def test_a_channel_without_a_usable_token_is_refused_without_showing_it() -> None:
    broken = Channel("c2", "Bot", "telegram", "1", "q", {"bot_token": "1:abc/../../x"})
    async with httpx.AsyncClient() as http:
        with pytest.raises(PermanentError) as caught:
            await PROVIDER.send(http, broken, outgoing("hi"))
    assert "bot_token" in str(caught.value) and "abc" not in str(caught.value)


async def test_files_above_the_bot_download_limit_are_refused_before_any_call() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(PermanentError, match="at most 20 MB"):
            await PROVIDER.locate_attachment(http, CHANNEL, Attachment(provider_file_id="f", size=21 * 1024 * 1024))


# Polling backoff


def test_backoff_doubles_up_to_its_cap_and_honours_longer_hints() -> None:
    backoff = Backoff(1.0, 30.0)
    assert [backoff.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next(45.0) == 45.0
    backoff.reset()
    assert backoff.next() == 1


def test_a_polling_conflict_says_which_one_it_is() -> None:
    webhook = conflict_detail(
        "Telegram getUpdates refused (409): Conflict: can't use getUpdates method while webhook is active"
    )
    assert "register the channel again" in webhook
    other = conflict_detail("Telegram getUpdates refused (409): Conflict: terminated by other getUpdates request")
    assert "Another program is polling" in other and "register" not in other


# Property: random JSON and random Update-shaped JSON are converted or refused with 400, never a crash

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["\ud83d", "private", "group", "", "AgACAgIAAxk"])
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a value of the right shape, sometimes any JSON: conversion paths are reached, and also broken."""
    return st.sampled_from([True] * 19 + [False]).flatmap(lambda good: valid if good else json_values)


texts = mostly(st.text(max_size=30))
sizes = mostly(st.integers(0, 30 * 1024 * 1024))
files = st.fixed_dictionaries(
    {"file_id": mostly(st.text(min_size=1, max_size=12))},
    optional={"file_size": sizes, "mime_type": texts, "file_name": texts, "width": sizes, "height": sizes},
)
people = st.fixed_dictionaries(
    {"id": mostly(st.integers(1, 2**52))}, optional={"first_name": texts, "last_name": texts, "username": texts}
)
chats = st.fixed_dictionaries(
    {"id": mostly(st.integers(-(2**52), 2**52)), "type": mostly(st.sampled_from(["private", "group", "supergroup"]))},
    optional={"title": texts, "first_name": texts},
)
degrees = mostly(st.floats(-200, 200) | st.integers(-90, 90))
messages = st.fixed_dictionaries(
    {"message_id": mostly(st.integers(0, 2**31)), "chat": mostly(chats), "date": mostly(st.integers(0, 2**33))},
    optional={
        "from": mostly(people),
        "text": texts,
        "caption": texts,
        "photo": mostly(st.lists(files, max_size=3)),
        "document": mostly(files),
        "voice": mostly(files),
        "sticker": mostly(files),
        "location": mostly(st.fixed_dictionaries({"latitude": degrees, "longitude": degrees})),
    },
)
updates = st.fixed_dictionaries(
    {"update_id": mostly(st.integers(0, 2**31)), "message": mostly(messages)},
    optional={"edited_message": messages, "callback_query": json_values},
)


def _converted_or_rejected(payload: Any) -> None:
    try:
        converted = convert(payload)
    except WebhookRejected as rejected:
        assert rejected.status == 400
        return
    assert len(converted) <= 1
    for message in converted:
        # What ingress publishes must serialise: a message that passed conversion always can.
        assert UnifiedMessage.model_validate_json(message.model_dump_json()) == message
        assert message.text or message.attachments or message.location


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_is_converted_or_rejected_with_400(payload: Any) -> None:
    _converted_or_rejected(payload)


@settings(max_examples=500, deadline=None)
@given(updates)
def test_random_updates_are_converted_or_rejected_with_400(payload: Any) -> None:
    _converted_or_rejected(payload)
