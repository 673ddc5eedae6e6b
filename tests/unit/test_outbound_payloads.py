"""What each provider puts on the wire for operators' files, templates and tagged replies (issue 13 items 6 and 7)."""

import json
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import pytest

from omni_contracts import Attachment, MessageOutgoing, Template
from omni_providers import Channel, FileUploader, OutgoingFile
from omni_providers.meta import MessengerProvider, WhatsAppProvider
from omni_providers.telegram import TelegramProvider, send_calls
from omni_providers.thirdparty import ThirdPartyProvider
from omni_providers.twilio import TwilioProvider
from omni_runtime.errors import PermanentError
from omni_runtime.settings import Settings

MB = 1024 * 1024
SIGNED = "https://chat.example.com/media/65f0a1b2c3d4e5f6a7b8c9d0.1767003600.sig"
PHOTO_BYTES = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4


def channel(provider: str, source: str = "src", **settings: Any) -> Channel:
    return Channel(id="ch", name="Acme", provider=provider, source=source, queue_id="q", settings=settings)


def reply(text: str | None = None, *attachments: Attachment, **extra: Any) -> MessageOutgoing:
    return MessageOutgoing(
        message_id="out-1",
        chat_id="chat-1",
        channel_id="ch",
        provider="p",
        recipient="4917612345678",
        text=text,
        attachments=attachments,
        **extra,
    )


def our_file(file_id: str, name: str, content_type: str, size: int, content: bytes = b"") -> OutgoingFile:
    async def read() -> bytes:
        return content

    return OutgoingFile(file_id=file_id, file_name=name, content_type=content_type, size=size, read=read)


class Recorder:
    """An httpx transport that records each request and answers with `answer(request)`."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.calls: list[httpx.Request] = []
        self._answer = answer

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        return self._answer(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


def multipart(request: httpx.Request) -> dict[str, tuple[str | None, str | None, bytes]]:
    """A multipart/form-data body as {field: (file name, content type, bytes)}, parsed by the standard library."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    parsed = BytesParser(policy=HTTP).parsebytes(head + request.content)
    parts: dict[str, tuple[str | None, str | None, bytes]] = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        content_type = part.get_content_type() if part.get("content-type") else None
        payload = part.get_payload(decode=True)
        parts[str(name)] = (part.get_filename(), content_type, payload if isinstance(payload, bytes) else b"")
    return parts


# --- Telegram: our files go up as multipart uploads ------------------------------------------------------------


TELEGRAM = TelegramProvider("telegram", Settings(telegram_api_url="http://telegram.test"))
BOT = channel("telegram", "123456789", bot_token="123456789:AAH-secret_part")


def test_telegram_uploads_photos_within_the_photo_limit_and_everything_else_as_documents() -> None:
    photo = our_file("f1", "dent.jpg", "image/jpeg", 2 * MB)
    huge_photo = our_file("f2", "panorama.png", "image/png", 11 * MB)
    gif = our_file("f3", "wave.gif", "image/gif", MB)
    pdf = our_file("f4", "invoice.pdf", "application/pdf", 3 * MB)
    files = {f.file_id: f for f in (photo, huge_photo, gif, pdf)}
    message = reply("Here they are", *(Attachment(file_id=f) for f in files))
    assert send_calls(message, files) == [
        ("sendPhoto", {"photo": photo, "caption": "Here they are"}),
        ("sendDocument", {"document": huge_photo}),
        ("sendDocument", {"document": gif}),
        ("sendDocument", {"document": pdf}),
    ]
    too_big = our_file("f5", "backup.zip", "application/zip", 50 * MB + 1)
    with pytest.raises(PermanentError, match="at most 50 MB"):
        send_calls(reply(None, Attachment(file_id="f5")), {"f5": too_big})


async def test_telegram_send_files_posts_the_bytes_as_multipart_with_the_caption() -> None:
    assert isinstance(TELEGRAM, FileUploader)
    photo = our_file("f1", "Schäden.jpg", "image/jpeg", len(PHOTO_BYTES), PHOTO_BYTES)
    api = Recorder(lambda r: httpx.Response(200, json={"ok": True, "result": {"message_id": 42}}))
    async with api.client() as http:
        sent = await TELEGRAM.send_files(http, BOT, reply("the dent", Attachment(file_id="f1")), {"f1": photo})
    assert sent.provider_message_id == "4917612345678:42"
    [request] = api.calls
    assert str(request.url) == "http://telegram.test/bot123456789:AAH-secret_part/sendPhoto"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert multipart(request) == {
        "chat_id": (None, None, b"4917612345678"),
        "caption": (None, None, b"the dent"),
        "photo": ("Schäden.jpg", "image/jpeg", PHOTO_BYTES),
    }


def test_telegram_has_no_templates() -> None:
    with pytest.raises(PermanentError, match="Telegram does not send templates"):
        send_calls(reply(template=Template(name="hello", language="en")))


# --- Messenger: attachments by URL, HUMAN_AGENT where the dispatcher says so -----------------------------------

MESSENGER = MessengerProvider("messenger", Settings(meta_graph_api_url="http://graph.test/v21.0"))
PAGE = channel("messenger", "1122", page_access_token="EAA-page", app_secret="s", verify_token="v")


def graph_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"recipient_id": "x", "message_id": "m_1", "messages": [{"id": "wamid.1"}]})


async def test_messenger_sends_our_file_by_its_signed_url_and_tags_every_part() -> None:
    graph = Recorder(graph_ok)
    pdf = Attachment(file_id="f1", url=SIGNED, content_type="application/pdf", file_name="bill.pdf", size=900)
    async with graph.client() as http:
        await MESSENGER.send(http, PAGE, reply("Your bill", pdf, tag="HUMAN_AGENT"))
    bodies = [json.loads(r.content) for r in graph.calls]
    common = {"recipient": {"id": "4917612345678"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    assert bodies == [
        {**common, "message": {"text": "Your bill"}},
        {**common, "message": {"attachment": {"type": "file", "payload": {"url": SIGNED, "is_reusable": True}}}},
    ]


async def test_messenger_without_a_tag_answers_as_a_response_and_refuses_templates() -> None:
    graph = Recorder(graph_ok)
    photo = Attachment(file_id="f1", url=SIGNED, content_type="image/png")
    async with graph.client() as http:
        await MESSENGER.send(http, PAGE, reply(None, photo))
        with pytest.raises(PermanentError, match="Messenger does not send templates"):
            await MESSENGER.send(http, PAGE, reply(template=Template(name="t", language="en")))
    [body] = [json.loads(r.content) for r in graph.calls]
    assert body["messaging_type"] == "RESPONSE" and "tag" not in body
    assert body["message"]["attachment"] == {"type": "image", "payload": {"url": SIGNED, "is_reusable": True}}


# --- WhatsApp Cloud API: templates, media by link ------------------------------------------------------------

WHATSAPP = WhatsAppProvider("whatsapp", Settings(meta_graph_api_url="http://graph.test/v21.0"))
NUMBER = channel("whatsapp", "5566", access_token="EAA-wa", app_secret="s", verify_token="v")


async def whatsapp_bodies(message: MessageOutgoing) -> list[dict[str, Any]]:
    graph = Recorder(graph_ok)
    async with graph.client() as http:
        await WHATSAPP.send(http, NUMBER, message)
    return [json.loads(r.content) for r in graph.calls]


async def test_whatsapp_template_carries_name_language_and_body_parameters_in_order() -> None:
    template = Template(name="order_update", language="en_US", parameters=("Ann", "A-1001", "Mon, 9 Mar"))
    assert await whatsapp_bodies(reply("ignored", template=template)) == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4917612345678",
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "en_US"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Ann"},
                            {"type": "text", "text": "A-1001"},
                            {"type": "text", "text": "Mon, 9 Mar"},
                        ],
                    }
                ],
            },
        }
    ]
    [plain] = await whatsapp_bodies(reply(template=Template(name="hello_world", language="en_US")))
    assert plain["template"] == {"name": "hello_world", "language": {"code": "en_US"}}
    with pytest.raises(PermanentError, match="needs its language code"):
        await whatsapp_bodies(reply(template=Template(name="hello_world")))


async def test_whatsapp_sends_our_files_by_link_as_image_only_where_whatsapp_takes_it() -> None:
    jpeg = Attachment(file_id="f1", url=SIGNED + "1", content_type="image/jpeg", file_name="a.jpg", size=MB)
    big = Attachment(file_id="f2", url=SIGNED + "2", content_type="image/jpeg", file_name="b.jpg", size=6 * MB)
    gif = Attachment(file_id="f3", url=SIGNED + "3", content_type="image/gif", file_name="c.gif", size=MB)
    bodies = await whatsapp_bodies(reply("look", jpeg, big, gif))
    assert [(b["type"], b[b["type"]]) for b in bodies] == [
        ("image", {"link": SIGNED + "1", "caption": "look"}),
        ("document", {"link": SIGNED + "2", "filename": "b.jpg"}),
        ("document", {"link": SIGNED + "3", "filename": "c.gif"}),
    ]


# --- Twilio: ContentSid and ContentVariables, MediaUrl -------------------------------------------------------

TWILIO = TwilioProvider(
    "twilio", Settings(twilio_api_url="http://twilio.test", public_base_url="https://chat.example.com")
)
SENDER = channel("twilio", "+14155238886", account_sid="AC123", auth_token="t0ken")
CONTENT_SID = "HX" + "a" * 32


def test_twilio_template_is_a_content_sid_with_numbered_variables_and_no_body() -> None:
    template = Template(name=CONTENT_SID, parameters=("Ann", "12/1", "Grüße"))
    form = TWILIO.outgoing_form(SENDER, reply("ignored", template=template))
    assert form == {
        "To": "whatsapp:4917612345678",
        "From": "whatsapp:+14155238886",
        "ContentSid": CONTENT_SID,
        "ContentVariables": '{"1": "Ann", "2": "12/1", "3": "Grüße"}',
        "StatusCallback": "https://chat.example.com/webhooks/twilio/ch",
    }
    bare = TWILIO.outgoing_form(SENDER, reply(template=Template(name=CONTENT_SID)))
    assert "ContentVariables" not in bare and bare["ContentSid"] == CONTENT_SID


def test_twilio_sends_our_files_as_media_urls_within_5_mb_in_all() -> None:
    small = Attachment(file_id="f1", url=SIGNED + "1", content_type="image/png", size=2 * MB)
    other = Attachment(file_id="f2", url=SIGNED + "2", content_type="application/pdf", size=2 * MB)
    form = TWILIO.outgoing_form(SENDER, reply("two files", small, other))
    assert (form["Body"], form["MediaUrl"]) == ("two files", [SIGNED + "1", SIGNED + "2"])
    third = Attachment(file_id="f3", url=SIGNED + "3", content_type="image/png", size=2 * MB)
    with pytest.raises(PermanentError, match="at most 5 MB of media per message"):
        TWILIO.outgoing_form(SENDER, reply("three files", small, other, third))


async def test_twilio_posts_the_template_form() -> None:
    api = Recorder(lambda r: httpx.Response(201, json={"sid": "SM1", "status": "queued"}))
    async with api.client() as http:
        sent = await TWILIO.send(http, SENDER, reply(template=Template(name=CONTENT_SID, parameters=("Ann",))))
    assert sent.provider_message_id == "SM1"
    form = dict(httpx.QueryParams(api.calls[0].content.decode()))
    assert (form["ContentSid"], form["ContentVariables"]) == (CONTENT_SID, '{"1": "Ann"}')
    assert "Body" not in form


# --- third-party: attachments[].url --------------------------------------------------------------------------


async def test_third_party_gets_our_file_as_its_signed_url_and_no_templates() -> None:
    acme = ThirdPartyProvider("acme")
    outgoing = channel("acme", "bot-1", secret="s3cret", outgoing_url="http://acme.test/out")
    receiver = Recorder(lambda r: httpx.Response(200, json={"message_id": "x1"}))
    pdf = Attachment(file_id="f1", url=SIGNED, content_type="application/pdf", file_name="bill.pdf", size=10)
    async with receiver.client() as http:
        await acme.send(http, outgoing, reply("bill", pdf))
        with pytest.raises(PermanentError, match="acme channels do not send templates"):
            await acme.send(http, outgoing, reply(template=Template(name="t")))
    body = json.loads(receiver.calls[0].content)
    assert body["attachments"] == [{"url": SIGNED, "content_type": "application/pdf", "file_name": "bill.pdf"}]
    assert len(receiver.calls) == 1
