"""Messenger and WhatsApp Cloud API: handshake, X-Hub-Signature-256, conversion, Graph calls and their errors."""

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omni_contracts import Attachment, MessageOutgoing
from omni_providers import Channel, Inbound, InboundRequest, WebhookRejected, delivery_policy
from omni_providers.meta import MessengerProvider, WhatsAppProvider
from omni_providers.meta.graph import classify
from omni_providers.registry import ProviderRegistry
from omni_runtime.errors import PermanentError, RetryLater
from omni_runtime.settings import Settings

GRAPH = "http://graph.test/v21.0"
SETTINGS = Settings(meta_graph_api_url=GRAPH)
PAGE = Channel(
    id="ch-page",
    name="Acme page",
    provider="messenger",
    source="1122",
    queue_id="q",
    settings={"page_access_token": "EAA-page-token", "app_secret": "page-secret", "verify_token": "v-page"},
)
NUMBER = Channel(
    id="ch-wa",
    name="Acme WhatsApp",
    provider="whatsapp",
    source="5566",
    queue_id="q",
    settings={"access_token": "EAA-wa-token", "app_secret": "wa-secret", "verify_token": "v-wa"},
)


class Channels:
    """An in-memory ChannelLookup (the port ingress implements over MongoDB)."""

    def __init__(self, *channels: Channel) -> None:
        self.channels = list(channels)

    async def by_id(self, provider: str, channel_id: str) -> Channel | None:
        return next((c for c in self.channels if c.provider == provider and c.id == channel_id), None)

    async def by_source(self, provider: str, source: str) -> Channel | None:
        return next((c for c in self.channels if c.provider == provider and c.source == source), None)

    async def of_provider(self, provider: str) -> list[Channel]:
        return [c for c in self.channels if c.provider == provider]


class AnySource(Channels):
    """Every source is a channel with the same app secret: lets random payloads past the signature."""

    async def by_source(self, provider: str, source: str) -> Channel | None:
        return Channel(id=f"ch-{source}", name="Any", provider=provider, source=source, queue_id="q", settings=SECRETS)


SECRETS = {"app_secret": "any-secret", "page_access_token": "t", "access_token": "t", "verify_token": "v"}


def sign(body: bytes, secret: str) -> str:
    """Computed here from hashlib, not by the code under test."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(body: Any, secret: str | None, raw: bytes | None = None) -> InboundRequest:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(data, secret)
    return InboundRequest(body=data, headers=headers, url="http://ingress/webhooks/x")


def receive(provider: MessengerProvider | WhatsAppProvider, request: InboundRequest, channels: Channels) -> Inbound:
    return asyncio.run(provider.receive(request, channels))


def rejected(call: Callable[[], object]) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        call()
    return caught.value


def messenger_event(page: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": page, "time": 1_767_000_000_000, "messaging": list(items)}]}


def text_item(mid: str, text: str, psid: str = "psid-1", page: str = "1122", **message: Any) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": page},
        "timestamp": 1_767_000_000_123,
        "message": {"mid": mid, "text": text, **message},
    }


def wa_event(number: str, **value: Any) -> dict[str, Any]:
    metadata = {"display_phone_number": "15550100", "phone_number_id": number}
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": metadata, **value}}
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [change]}]}


# --- the registry and the policies -------------------------------------------------------------


def test_registry_finds_both_adapters_with_their_policies() -> None:
    registry = ProviderRegistry(SETTINGS)
    messenger, whatsapp = registry.get("messenger"), registry.get("whatsapp")
    assert isinstance(messenger, MessengerProvider) and isinstance(whatsapp, WhatsAppProvider)
    assert delivery_policy(messenger).reply_window is not None
    assert delivery_policy(messenger).reply_window.total_seconds() == 24 * 3600  # type: ignore[union-attr]
    assert delivery_policy(whatsapp).per_channel_rate == 80
    assert delivery_policy(messenger).per_channel_rate == 300
    assert messenger.graph == GRAPH


# --- the handshake ---------------------------------------------------------------------------


def handshake(provider: MessengerProvider | WhatsAppProvider, **query: str) -> Inbound:
    request = InboundRequest(b"", {}, "http://ingress/webhooks/messenger", method="GET", query=query)
    return receive(provider, request, Channels(PAGE, NUMBER))


def test_handshake_answers_the_challenge_as_text_for_a_channels_verify_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "v-page", "hub.challenge": "1158201444"}
    reply = handshake(MessengerProvider("messenger", SETTINGS), **query).reply
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (200, b"1158201444", "text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "v-wa", "hub.challenge": "1"},  # another provider's token
        {"hub.mode": "unsubscribe", "hub.verify_token": "v-page", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_refuses_with_403(query: dict[str, str]) -> None:
    assert rejected(lambda: handshake(MessengerProvider("messenger", SETTINGS), **query)).status == 403


def test_whatsapp_handshake_uses_whatsapp_channels() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "v-wa", "hub.challenge": "abc"}
    reply = handshake(WhatsAppProvider("whatsapp", SETTINGS), **query).reply
    assert reply is not None and reply.body == b"abc"


# --- signatures ------------------------------------------------------------------------------

# Messenger's documented text message example, as Meta would send it.
META_EXAMPLE = (
    b'{"object":"page","entry":[{"id":"1122","time":1458692752478,"messaging":[{"sender":{"id":"USER_ID"},'
    b'"recipient":{"id":"1122"},"timestamp":1458692752478,"message":{"mid":"mid.1457764197618:41d102a3e1ae206a38",'
    b'"text":"hello, world!","quick_reply":{"payload":"DEVELOPER_DEFINED_PAYLOAD"}}}]}]}'
)


def test_metas_example_signed_independently_is_accepted() -> None:
    inbound = receive(MessengerProvider("messenger", SETTINGS), post(None, "page-secret", META_EXAMPLE), Channels(PAGE))
    [message] = inbound.messages
    assert (message.provider_message_id, message.text, message.sender) == (
        "mid.1457764197618:41d102a3e1ae206a38",
        "hello, world!",
        "USER_ID",
    )


def test_missing_wrong_and_altered_signatures_are_401() -> None:
    provider, channels = MessengerProvider("messenger", SETTINGS), Channels(PAGE)
    assert rejected(lambda: receive(provider, post(None, None, META_EXAMPLE), channels)).status == 401
    assert rejected(lambda: receive(provider, post(None, "not-the-secret", META_EXAMPLE), channels)).status == 401
    signed = post(None, "page-secret", META_EXAMPLE)
    altered = InboundRequest(META_EXAMPLE.replace(b"hello", b"HELLO"), signed.headers, signed.url)
    assert rejected(lambda: receive(provider, altered, channels)).status == 401
    bare = InboundRequest(META_EXAMPLE, {"X-Hub-Signature-256": sign(META_EXAMPLE, "page-secret")[7:]}, signed.url)
    assert rejected(lambda: receive(provider, bare, channels)).status == 401


def test_a_body_naming_two_pages_must_verify_for_both() -> None:
    other = Channel(
        id="ch-2", name="Other", provider="messenger", source="3344", queue_id="q", settings={"app_secret": "other"}
    )
    body = messenger_event("1122", text_item("m1", "one"))
    body["entry"].append(messenger_event("3344", text_item("m2", "two", page="3344"))["entry"][0])
    provider = MessengerProvider("messenger", SETTINGS)
    assert rejected(lambda: receive(provider, post(body, "page-secret"), Channels(PAGE, other))).status == 401
    same_app = Channel(**{**other.__dict__, "settings": {"app_secret": "page-secret"}})
    inbound = receive(provider, post(body, "page-secret"), Channels(PAGE, same_app))
    assert [(m.channel_id, m.text) for m in inbound.messages] == [("ch-page", "one"), ("ch-2", "two")]


def test_unknown_page_is_404_and_malformed_json_400() -> None:
    provider = MessengerProvider("messenger", SETTINGS)
    assert (
        rejected(lambda: receive(provider, post(messenger_event("999"), "page-secret"), Channels(PAGE))).status == 404
    )
    assert rejected(lambda: receive(provider, post(None, "page-secret", b"{not json"), Channels(PAGE))).status == 400
    no_page = {"object": "page", "entry": [{"messaging": []}]}
    assert rejected(lambda: receive(provider, post(no_page, "page-secret"), Channels(PAGE))).status == 400


def test_inactive_or_other_provider_channels_do_not_count() -> None:
    provider = WhatsAppProvider("whatsapp", SETTINGS)
    body = wa_event("1122")  # the Messenger page's source, not a WhatsApp number
    assert rejected(lambda: receive(provider, post(body, "page-secret"), Channels(PAGE, NUMBER))).status == 404


# --- Messenger conversion ----------------------------------------------------------------------


def messenger_receive(body: dict[str, Any]) -> Inbound:
    return receive(MessengerProvider("messenger", SETTINGS), post(body, "page-secret"), Channels(PAGE))


def test_messenger_keeps_every_entry_and_item_and_drops_echoes() -> None:
    body = messenger_event("1122", text_item("m1", "first"), text_item("m2", "second", psid="psid-2"))
    body["entry"].append(
        messenger_event("1122", text_item("m3", "third"), text_item("m-echo", "ours", is_echo=True))["entry"][0]
    )
    messages = messenger_receive(body).messages
    assert [(m.provider_message_id, m.sender, m.text) for m in messages] == [
        ("m1", "psid-1", "first"),
        ("m2", "psid-2", "second"),
        ("m3", "psid-1", "third"),
    ]
    first = messages[0]
    assert (first.provider, first.channel_id, first.recipient, first.type) == ("messenger", "ch-page", "1122", "text")
    assert first.sent_at.timestamp() == pytest.approx(1_767_000_000.123)


def test_messenger_attachments_location_sticker_and_fallback() -> None:
    attachments = [
        {"type": "image", "payload": {"url": "https://cdn/p.jpg"}},
        {"type": "video", "payload": {"url": "https://cdn/v.mp4"}},
    ]
    item = text_item("m1", "look", attachments=attachments)
    sticker = text_item(
        "m2",
        "",
        attachments=[{"type": "image", "payload": {"url": "https://cdn/s.png", "sticker_id": 369239263222822}}],
    )
    location = text_item(
        "m3", "", attachments=[{"type": "location", "payload": {"coordinates": {"lat": 52.5, "long": 13.4}}}]
    )
    fallback = text_item(
        "m4", "", attachments=[{"type": "fallback", "title": "A link", "url": "https://example.org/x"}]
    )
    bare = text_item("m5", "", attachments=[{"type": "fallback"}])
    audio = {
        "sender": {"id": "psid-1"},
        "recipient": {"id": "1122"},
        "message": {"mid": "m6", "attachments": [{"type": "audio", "payload": {"url": "https://cdn/a.mp4"}}]},
    }
    messages = messenger_receive(messenger_event("1122", item, sticker, location, fallback, bare, audio)).messages
    image, stick, place, link, empty, voice = messages
    assert (image.type, image.text, [a.url for a in image.attachments]) == (
        "image",
        "look",
        ["https://cdn/p.jpg", "https://cdn/v.mp4"],
    )
    assert (stick.type, stick.attachments[0].url) == ("sticker", "https://cdn/s.png")
    assert place.type == "location" and place.location is not None
    assert (place.location.latitude, place.location.longitude) == (52.5, 13.4)
    assert (link.type, link.text, link.attachments) == ("text", "A link https://example.org/x", ())
    assert (empty.type, empty.text) == ("text", "[fallback]")
    assert (voice.type, voice.attachments[0].url) == ("audio", "https://cdn/a.mp4")
    assert voice.sent_at.timestamp() == pytest.approx(1_767_000_000)  # the entry's time when the item has none


def test_messenger_receipts_by_mid_and_by_watermark() -> None:
    delivery = {
        "sender": {"id": "psid-1"},
        "recipient": {"id": "1122"},
        "delivery": {"mids": ["m_a", "m_b"], "watermark": 1_767_000_000_000},
    }
    old_client = {"sender": {"id": "psid-1"}, "recipient": {"id": "1122"}, "delivery": {"watermark": 1_767_000_001_000}}
    read = {
        "sender": {"id": "psid-1"},
        "recipient": {"id": "1122"},
        "timestamp": 1,
        "read": {"watermark": 1_767_000_002_000},
    }
    statuses = messenger_receive(messenger_event("1122", delivery, old_client, read)).statuses
    assert [(s.provider_message_id, s.status, s.recipient) for s in statuses] == [
        ("m_a", "delivered", None),
        ("m_b", "delivered", None),
        (None, "delivered", "psid-1"),
        (None, "read", "psid-1"),
    ]
    assert statuses[2].watermark is not None and statuses[2].watermark.timestamp() == 1_767_000_001
    assert statuses[3].watermark is not None and statuses[3].watermark.timestamp() == 1_767_000_002
    assert all(s.channel_id == "ch-page" for s in statuses)


def test_messenger_postback_is_kept_as_text() -> None:
    item = {
        "sender": {"id": "psid-1"},
        "recipient": {"id": "1122"},
        "timestamp": 5,
        "postback": {"mid": "m_pb", "title": "Talk to sales", "payload": "SALES"},
    }
    [message] = messenger_receive(messenger_event("1122", item)).messages
    assert (message.provider_message_id, message.text) == ("m_pb", "Talk to sales")


@pytest.mark.parametrize(
    "body",
    [
        {"object": "instagram", "entry": [{"id": "1122", "messaging": []}]},
        messenger_event("1122", {"sender": {"id": "p"}, "recipient": {"id": "1122"}, "message": {"text": "no mid"}}),
        messenger_event("1122", {"recipient": {"id": "1122"}, "message": {"mid": "m", "text": "no sender"}}),
        messenger_event(
            "1122", {"sender": {"id": "p"}, "recipient": {"id": "1122"}, "timestamp": -5, "message": {"mid": "m"}}
        ),
        messenger_event("1122", {"sender": {"id": "p"}, "recipient": {"id": "1122"}, "read": {"watermark": "soon"}}),
    ],
)
def test_malformed_messenger_events_are_400(body: dict[str, Any]) -> None:
    assert rejected(lambda: messenger_receive(body)).status == 400


# --- WhatsApp conversion -----------------------------------------------------------------------


def whatsapp_receive(body: dict[str, Any]) -> Inbound:
    return receive(WhatsAppProvider("whatsapp", SETTINGS), post(body, "wa-secret"), Channels(NUMBER))


def wa_message(wamid: str, kind: str, content: Any, sender: str = "4917600000001") -> dict[str, Any]:
    return {"from": sender, "id": wamid, "timestamp": "1767000000", "type": kind, kind: content}


def test_whatsapp_messages_of_every_kind_with_the_senders_name() -> None:
    contacts = [{"profile": {"name": "Ann Customer"}, "wa_id": "4917600000001"}]
    messages = [
        wa_message("wamid.1", "text", {"body": "hello"}),
        wa_message(
            "wamid.2", "image", {"id": "media-1", "mime_type": "image/jpeg", "sha256": "x", "caption": "my photo"}
        ),
        wa_message("wamid.3", "document", {"id": "media-2", "mime_type": "application/pdf", "filename": "bill.pdf"}),
        wa_message("wamid.4", "audio", {"id": "media-3", "mime_type": "audio/ogg; codecs=opus"}),
        wa_message("wamid.5", "sticker", {"id": "media-4", "mime_type": "image/webp"}),
        wa_message("wamid.6", "video", {"id": "media-5", "caption": "clip"}),
        wa_message(
            "wamid.7", "location", {"latitude": 52.5, "longitude": 13.4, "name": "Office", "address": "Main St 1"}
        ),
        wa_message("wamid.8", "interactive", {"type": "button_reply", "button_reply": {"id": "b1", "title": "Yes"}}),
        wa_message("wamid.9", "reaction", {"message_id": "wamid.0", "emoji": "x"}),
    ]
    converted = whatsapp_receive(wa_event("5566", contacts=contacts, messages=messages)).messages
    assert [(m.provider_message_id, m.type, m.text) for m in converted] == [
        ("wamid.1", "text", "hello"),
        ("wamid.2", "image", "my photo"),
        ("wamid.3", "file", None),
        ("wamid.4", "audio", None),
        ("wamid.5", "sticker", None),
        ("wamid.6", "video", "clip"),
        ("wamid.7", "location", "Office, Main St 1"),
        ("wamid.8", "text", "Yes"),
        ("wamid.9", "text", "[reaction message]"),
    ]
    assert all(m.sender_name == "Ann Customer" and m.sender == "4917600000001" for m in converted)
    assert all((m.channel_id, m.recipient, m.provider) == ("ch-wa", "5566", "whatsapp") for m in converted)
    assert converted[1].attachments == (Attachment(provider_file_id="media-1", content_type="image/jpeg"),)
    assert converted[2].attachments[0].file_name == "bill.pdf"
    assert converted[0].sent_at.timestamp() == 1_767_000_000


def test_whatsapp_sender_from_the_contact_when_from_is_missing() -> None:
    message = {"id": "wamid.1", "timestamp": "1767000000", "type": "text", "text": {"body": "hi"}}
    body = wa_event("5566", contacts=[{"profile": {"name": "Henry"}, "wa_id": "573163513800"}], messages=[message])
    [converted] = whatsapp_receive(body).messages
    assert (converted.sender, converted.sender_name) == ("573163513800", "Henry")
    nameless = wa_event("5566", contacts=[{"profile": {"name": "Henry"}}], messages=[message])
    assert rejected(lambda: whatsapp_receive(nameless)).status == 400


def test_whatsapp_statuses_become_receipts_with_the_failure_reason() -> None:
    statuses = [
        {"id": "wamid.A", "status": "sent", "timestamp": "1", "recipient_id": "49"},
        {"id": "wamid.A", "status": "delivered", "timestamp": "2", "recipient_id": "49"},
        {"id": "wamid.A", "status": "read", "timestamp": "3", "recipient_id": "49"},
        {
            "id": "wamid.B",
            "status": "failed",
            "timestamp": "4",
            "recipient_id": "49",
            "errors": [{"code": 131047, "title": "Re-engagement message"}],
        },
        {"id": "wamid.C", "status": "deleted", "timestamp": "5", "recipient_id": "49"},
    ]
    receipts = whatsapp_receive(wa_event("5566", statuses=statuses)).statuses
    assert [(r.provider_message_id, r.status) for r in receipts] == [
        ("wamid.A", "sent"),
        ("wamid.A", "delivered"),
        ("wamid.A", "read"),
        ("wamid.B", "failed"),
    ]
    assert receipts[3].reason is not None and "131047: Re-engagement message" in receipts[3].reason


def test_whatsapp_account_updates_are_acknowledged_and_dropped() -> None:
    body = wa_event("5566")
    body["entry"][0]["changes"].append(
        {"field": "account_update", "value": {"phone_number": "x", "event": "VERIFIED_ACCOUNT"}}
    )
    assert whatsapp_receive(body) == Inbound()


@pytest.mark.parametrize(
    "body",
    [
        wa_event("5566", messages=[wa_message("wamid.1", "image", None)]),
        wa_event("5566", messages=[{"from": "49", "type": "text", "text": {"body": "no id"}}]),
        wa_event("5566", messages=[{**wa_message("wamid.1", "text", {"body": "x"}), "timestamp": "yesterday"}]),
        wa_event("5566", statuses=[{"status": "read"}]),
        {
            "object": "page",
            "entry": [
                {"id": "x", "changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": "5566"}}}]}
            ],
        },
    ],
)
def test_malformed_whatsapp_events_are_400(body: dict[str, Any]) -> None:
    assert rejected(lambda: whatsapp_receive(body)).status == 400


# --- sending ----------------------------------------------------------------------------------


class Graph:
    """Meta's Graph API as an httpx transport: records each call and answers from a script."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.calls: list[httpx.Request] = []
        self.answers = list(answers)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        return self.answers.pop(0) if self.answers else httpx.Response(200, json={"message_id": "m_x"})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


def outgoing(text: str | None = "Hi Ann", *attachments: Attachment) -> MessageOutgoing:
    return MessageOutgoing(
        message_id="out-1",
        chat_id="chat-1",
        channel_id="ch",
        provider="p",
        recipient="cust-1",
        text=text,
        attachments=attachments,
    )


async def call(
    provider: MessengerProvider | WhatsAppProvider, channel: Channel, message: MessageOutgoing, graph: Graph
) -> str | None:
    async with graph.client() as http:
        return (await provider.send(http, channel, message)).provider_message_id


async def test_messenger_send_posts_the_send_api_format() -> None:
    graph = Graph(
        httpx.Response(200, json={"recipient_id": "cust-1", "message_id": "m_1"}),
        httpx.Response(200, json={"recipient_id": "cust-1", "message_id": "m_2"}),
    )
    photo = Attachment(url="https://files/p.png", content_type="image/png")
    assert await call(MessengerProvider("messenger", SETTINGS), PAGE, outgoing("Hi Ann", photo), graph) == "m_2"
    text, image = graph.calls
    assert str(text.url) == f"{GRAPH}/1122/messages?access_token=EAA-page-token"
    assert json.loads(text.content) == {
        "recipient": {"id": "cust-1"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hi Ann"},
    }
    assert json.loads(image.content) == {
        "recipient": {"id": "cust-1"},
        "messaging_type": "RESPONSE",
        "message": {"attachment": {"type": "image", "payload": {"url": "https://files/p.png", "is_reusable": True}}},
    }


async def test_whatsapp_send_posts_the_cloud_api_format_with_a_bearer_token() -> None:
    graph = Graph(httpx.Response(200, json={"messaging_product": "whatsapp", "messages": [{"id": "wamid.X"}]}))
    provider = WhatsAppProvider("whatsapp", SETTINGS)
    assert await call(provider, NUMBER, outgoing("Hi Ann"), graph) == "wamid.X"
    [request] = graph.calls
    assert str(request.url) == f"{GRAPH}/5566/messages"
    assert request.headers["Authorization"] == "Bearer EAA-wa-token"
    assert json.loads(request.content) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "cust-1",
        "type": "text",
        "text": {"body": "Hi Ann"},
    }


async def test_whatsapp_text_rides_as_the_caption_of_the_first_image() -> None:
    graph = Graph()
    photo = Attachment(url="https://files/p.png", content_type="image/png")
    pdf = Attachment(url="https://files/b.pdf", content_type="application/pdf", file_name="bill.pdf")
    voice = Attachment(url="https://files/v.ogg", content_type="audio/ogg")
    await call(WhatsAppProvider("whatsapp", SETTINGS), NUMBER, outgoing("see these", photo, pdf, voice), graph)
    bodies = [json.loads(c.content) for c in graph.calls]
    assert [(b["type"], b[b["type"]]) for b in bodies] == [
        ("image", {"link": "https://files/p.png", "caption": "see these"}),
        ("document", {"link": "https://files/b.pdf", "filename": "bill.pdf"}),
        ("audio", {"link": "https://files/v.ogg"}),
    ]
    only_audio = Graph()
    await call(WhatsAppProvider("whatsapp", SETTINGS), NUMBER, outgoing("listen", voice), only_audio)
    assert [json.loads(c.content)["type"] for c in only_audio.calls] == ["text", "audio"]


def graph_error(code: int, status: int = 400, subcode: int | None = None, message: str = "nope") -> httpx.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "A"}
    if subcode:
        error["error_subcode"] = subcode
    return httpx.Response(status, json={"error": error})


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80007, 130429, 131056, 2])
async def test_rate_limit_and_transient_graph_errors_retry_later(code: int) -> None:
    with pytest.raises(RetryLater):
        await call(WhatsAppProvider("whatsapp", SETTINGS), NUMBER, outgoing(), Graph(graph_error(code)))


async def test_5xx_and_network_errors_retry_later_with_retry_after() -> None:
    busy = httpx.Response(503, text="<html>busy</html>", headers={"Retry-After": "7"})
    with pytest.raises(RetryLater) as caught:
        await call(MessengerProvider("messenger", SETTINGS), PAGE, outgoing(), Graph(busy))
    assert caught.value.retry_after == 7

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
        with pytest.raises(RetryLater) as refused:
            await MessengerProvider("messenger", SETTINGS).send(http, PAGE, outgoing())
    assert "EAA-page-token" not in str(refused.value) and refused.value.__cause__ is None


async def test_other_graph_errors_are_permanent_with_the_message_and_never_the_token() -> None:
    echoing = graph_error(190, message="Invalid OAuth access token EAA-page-token")
    with pytest.raises(PermanentError) as caught:
        await call(MessengerProvider("messenger", SETTINGS), PAGE, outgoing(), Graph(echoing))
    assert "Invalid OAuth access token" in str(caught.value) and "EAA-page-token" not in str(caught.value)
    with pytest.raises(PermanentError) as window:
        await call(WhatsAppProvider("whatsapp", SETTINGS), NUMBER, outgoing(), Graph(graph_error(131047)))
    assert "24-hour" in str(window.value)
    assert isinstance(classify(400, {"error": {"code": 10, "error_subcode": 2018278}}, "Send", "t"), PermanentError)
    assert isinstance(classify(400, {"error": {"code": 100, "is_transient": True}}, "Send", "t"), RetryLater)


async def test_an_outgoing_message_without_content_or_without_urls_is_refused() -> None:
    for provider, channel in (
        (MessengerProvider("messenger", SETTINGS), PAGE),
        (WhatsAppProvider("whatsapp", SETTINGS), NUMBER),
    ):
        with pytest.raises(PermanentError):
            await call(provider, channel, outgoing(None), Graph())
        with pytest.raises(PermanentError):
            await call(provider, channel, outgoing(None, Attachment(provider_file_id="ours")), Graph())


# --- profiles, media and registration ------------------------------------------------------------


async def test_messenger_profile_from_the_graph() -> None:
    graph = Graph(
        httpx.Response(
            200, json={"first_name": "Ann", "last_name": "Lee", "profile_pic": "https://cdn/ann.jpg", "id": "psid-1"}
        )
    )
    async with graph.client() as http:
        profile = await MessengerProvider("messenger", SETTINGS).fetch_profile(http, PAGE, "psid-1")
    assert (profile.name, profile.photo_url) == ("Ann Lee", "https://cdn/ann.jpg")
    [request] = graph.calls
    assert request.url.path == "/v21.0/psid-1"
    assert dict(request.url.params) == {"fields": "first_name,last_name,profile_pic", "access_token": "EAA-page-token"}


async def test_ids_from_webhooks_stay_one_path_segment() -> None:
    graph = Graph(httpx.Response(200, json={"first_name": "X"}))
    async with graph.client() as http:
        await MessengerProvider("messenger", SETTINGS).fetch_profile(http, PAGE, "../1122/subscribed_apps?x=")
    assert graph.calls[0].url.raw_path.decode().startswith("/v21.0/..%2F1122%2Fsubscribed_apps%3Fx%3D?")


async def test_whatsapp_media_id_becomes_a_url_fetched_with_the_bearer() -> None:
    graph = Graph(
        httpx.Response(200, json={"url": "https://lookaside/media?x=1", "mime_type": "image/jpeg", "id": "media-1"})
    )
    async with graph.client() as http:
        location = await WhatsAppProvider("whatsapp", SETTINGS).locate_attachment(
            http, NUMBER, Attachment(provider_file_id="media-1")
        )
    assert (location.url, dict(location.headers)) == (
        "https://lookaside/media?x=1",
        {"Authorization": "Bearer EAA-wa-token"},
    )
    assert str(graph.calls[0].url) == f"{GRAPH}/media-1" and "EAA-wa-token" not in repr(location)


async def test_register_checks_the_token_against_the_graph() -> None:
    messenger, whatsapp = MessengerProvider("messenger", SETTINGS), WhatsAppProvider("whatsapp", SETTINGS)
    subscribed = httpx.Response(200, json={"success": True})
    async with Graph(httpx.Response(200, json={"id": "1122", "name": "Acme"}), subscribed).client() as http:
        assert (await messenger.register(http, PAGE)).ok
    async with Graph(httpx.Response(200, json={"id": "9999", "name": "Elsewhere"})).client() as http:
        wrong_page = await messenger.register(http, PAGE)
    assert not wrong_page.ok and "9999" in wrong_page.detail
    async with Graph(httpx.Response(200, json={"id": "5566", "verified_name": "Acme"})).client() as http:
        assert (await whatsapp.register(http, NUMBER)).ok
    async with Graph(graph_error(190, message="Error validating access token")).client() as http:
        with pytest.raises(PermanentError):
            await whatsapp.register(http, NUMBER)
    bare = Channel(**{**NUMBER.__dict__, "settings": {"access_token": "t"}})
    async with Graph().client() as http:
        incomplete = await whatsapp.register(http, bare)
    assert not incomplete.ok and "app_secret" in incomplete.detail


async def test_register_subscribes_the_page_to_the_apps_webhooks_and_reports_a_refusal() -> None:
    messenger = MessengerProvider("messenger", SETTINGS)
    graph = Graph(httpx.Response(200, json={"id": "1122", "name": "Acme"}), httpx.Response(200, json={"success": True}))
    async with graph.client() as http:
        done = await messenger.register(http, PAGE)
    assert done.ok and done.detail == (
        "page token valid for Acme; page subscribed to the app's webhooks "
        "(messages,messaging_postbacks,message_deliveries,message_reads)"
    )
    subscribe = graph.calls[1]
    assert (subscribe.method, subscribe.url.path) == ("POST", "/v21.0/1122/subscribed_apps")
    assert dict(subscribe.url.params) == {
        "access_token": "EAA-page-token",
        "subscribed_fields": "messages,messaging_postbacks,message_deliveries,message_reads",
    }
    refused = graph_error(200, 403, message="(#200) Requires pages_messaging permission to manage the object")
    async with Graph(httpx.Response(200, json={"id": "1122", "name": "Acme"}), refused).client() as http:
        failed = await messenger.register(http, PAGE)
    assert not failed.ok
    assert failed.detail.startswith("page token valid for Acme, but subscribing the page to the app's webhooks failed")
    assert "Requires pages_messaging permission" in failed.detail and "EAA-page-token" not in failed.detail
    unconfirmed = httpx.Response(200, json={"success": False})
    async with Graph(httpx.Response(200, json={"id": "1122", "name": "Acme"}), unconfirmed).client() as http:
        assert not (await messenger.register(http, PAGE)).ok


# --- property tests: random payloads are converted or refused with 400, never crash ------------------

MESSENGER_KEYS = [
    "object",
    "entry",
    "id",
    "time",
    "messaging",
    "sender",
    "recipient",
    "timestamp",
    "message",
    "mid",
    "text",
    "is_echo",
    "attachments",
    "type",
    "payload",
    "url",
    "sticker_id",
    "coordinates",
    "lat",
    "long",
    "title",
    "delivery",
    "mids",
    "watermark",
    "read",
    "postback",
]
WHATSAPP_KEYS = [
    "object",
    "entry",
    "id",
    "changes",
    "field",
    "value",
    "metadata",
    "phone_number_id",
    "contacts",
    "profile",
    "name",
    "wa_id",
    "messages",
    "from",
    "timestamp",
    "type",
    "text",
    "body",
    "image",
    "document",
    "audio",
    "video",
    "sticker",
    "caption",
    "mime_type",
    "filename",
    "location",
    "latitude",
    "longitude",
    "statuses",
    "status",
    "errors",
    "code",
    "interactive",
    "button_reply",
    "title",
]
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        ["page", "whatsapp_business_account", "messages", "image", "text", "location", "read", "failed", "1122"]
    )
)


def shaped(keys: list[str], leaves: int = 30) -> st.SearchStrategy[Any]:
    """JSON built from the provider's own vocabulary, so random payloads reach deep into the converter."""
    return st.recursive(
        LEAVES,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(keys), children, max_size=6),
        max_leaves=leaves,
    )


def either(valid: st.SearchStrategy[Any], keys: list[str]) -> st.SearchStrategy[Any]:
    """Mostly a well-formed part, now and then anything at all."""
    anything = shaped(keys, 6)
    return st.integers(0, 29).flatmap(lambda n: anything if n == 17 else valid)


def optional(required: dict[str, Any], extra: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=extra)


def messenger_payloads() -> st.SearchStrategy[Any]:
    k = MESSENGER_KEYS
    ident = either(st.sampled_from(["1122", "psid-1", "m_1"]) | st.integers(0, 10**15), k)
    millis = either(st.integers(0, 2 * 10**12), k)
    party = either(optional({"id": ident}, {}), k)
    media = either(
        optional(
            {"type": st.sampled_from(["image", "video", "audio", "file", "location", "fallback", "template"])},
            {
                "payload": either(
                    optional({}, {"url": st.text(max_size=8), "sticker_id": ident, "coordinates": shaped(k)}), k
                ),
                "title": st.text(max_size=8),
                "url": st.text(max_size=8),
            },
        ),
        k,
    )
    message = either(
        optional(
            {"mid": ident},
            {"text": st.text(max_size=8), "is_echo": st.booleans(), "attachments": st.lists(media, max_size=3)},
        ),
        k,
    )
    receipt = either(optional({"watermark": millis}, {"mids": st.lists(ident, max_size=2)}), k)
    item = optional(
        {"sender": party, "recipient": party},
        {
            "timestamp": millis,
            "message": message,
            "delivery": receipt,
            "read": receipt,
            "postback": either(optional({}, {"mid": ident, "title": st.text(max_size=5)}), k),
        },
    )
    entry = either(
        optional(
            {"id": st.just("1122") | ident}, {"time": millis, "messaging": st.lists(item, min_size=1, max_size=3)}
        ),
        k,
    )
    return either(
        optional({"object": either(st.just("page"), k), "entry": st.lists(entry, min_size=1, max_size=3)}, {}), k
    )


def whatsapp_payloads() -> st.SearchStrategy[Any]:
    k = WHATSAPP_KEYS
    ident = either(st.sampled_from(["5566", "wamid.1", "4917"]) | st.integers(0, 10**15), k)
    kinds = st.sampled_from(["text", "image", "document", "audio", "video", "sticker", "location", "interactive", "x"])
    seconds = either(st.integers(0, 2 * 10**9) | st.just("1767000000"), k)
    media = either(optional({"id": ident}, {"mime_type": st.text(max_size=5), "caption": st.text(max_size=5)}), k)
    place = either(
        optional({"latitude": st.floats(-90, 90), "longitude": st.floats(-180, 180)}, {"name": st.text(max_size=5)}), k
    )
    message = optional(
        {"id": ident, "type": either(kinds, k), "from": ident},
        {
            "timestamp": seconds,
            "text": either(optional({"body": st.text(max_size=8)}, {}), k),
            "image": media,
            "document": media,
            "sticker": media,
            "location": place,
            "interactive": either(optional({}, {"button_reply": optional({}, {"title": st.text(max_size=5)})}), k),
        },
    )
    contact = either(
        optional({}, {"profile": either(optional({}, {"name": st.text(max_size=5)}), k), "wa_id": ident}), k
    )
    status = either(
        optional(
            {"id": ident, "status": either(st.sampled_from(["sent", "delivered", "read", "failed", "deleted"]), k)},
            {
                "errors": st.lists(
                    either(optional({}, {"code": st.integers(), "title": st.text(max_size=5)}), k), max_size=2
                )
            },
        ),
        k,
    )
    value = either(
        optional(
            {"metadata": either(optional({"phone_number_id": st.just("5566") | ident}, {}), k)},
            {
                "contacts": st.lists(contact, max_size=2),
                "messages": st.lists(message, min_size=1, max_size=3),
                "statuses": st.lists(status, max_size=2),
            },
        ),
        k,
    )
    change = either(optional({"field": either(st.just("messages"), k), "value": value}, {}), k)
    entry = either(optional({"changes": st.lists(change, min_size=1, max_size=3)}, {"id": ident}), k)
    return either(
        optional(
            {
                "object": either(st.just("whatsapp_business_account"), k),
                "entry": st.lists(entry, min_size=1, max_size=2),
            },
            {},
        ),
        k,
    )


def check_random(provider: MessengerProvider | WhatsAppProvider, payload: Any) -> Inbound | None:
    try:
        raw = json.dumps(payload).encode()
    except ValueError:
        raw = b"{broken"
    try:
        inbound = receive(provider, post(None, "any-secret", raw), AnySource())
    except WebhookRejected as refused:
        assert refused.status == 400
        return None
    assert all(m.provider_message_id and m.sender and m.channel_id for m in inbound.messages)
    assert all(s.provider_message_id or (s.watermark and s.recipient) for s in inbound.statuses)
    return inbound


@settings(max_examples=250, deadline=None)
@given(messenger_payloads())
def test_random_messenger_payloads_never_crash(payload: Any) -> None:
    check_random(MessengerProvider("messenger", SETTINGS), payload)


@settings(max_examples=250, deadline=None)
@given(whatsapp_payloads())
def test_random_whatsapp_payloads_never_crash(payload: Any) -> None:
    check_random(WhatsAppProvider("whatsapp", SETTINGS), payload)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_random_message_text_and_ids_round_trip(text: str, mid: str) -> None:
    body = messenger_event("1122", text_item(mid or "m", text))
    wa = wa_event("5566", messages=[wa_message(mid or "w", "text", {"body": text})])
    for provider, payload in (
        (MessengerProvider("messenger", SETTINGS), body),
        (WhatsAppProvider("whatsapp", SETTINGS), wa),
    ):
        try:
            inbound = receive(provider, post(payload, "any-secret"), AnySource())
        except WebhookRejected as refused:
            assert refused.status == 400
        else:
            assert [m.text for m in inbound.messages] in ([text or None], [text])
