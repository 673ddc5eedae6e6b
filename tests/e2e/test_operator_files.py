"""An operator's file and template replies through the running router (issue 13 items 6 and 7): `POST /api/files`,
then `POST /api/chats/{id}/messages` with `attachments: [{"file_id"}]` or a `template`, out through the dispatcher
to each messenger's simulator the provider's own way. The customer's message comes in on the broker as ingress
publishes it, timed by the messenger (`sent_at`), which is where the 24-hour window runs from."""

import hashlib
import json
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from gridfs import AsyncGridFSBucket

from omni_contracts import MessageReceived, UnifiedMessage
from omni_runtime.database import Database, Document
from tests.support.outbound import publish
from tests.support.stack import Simulator, Stack, eventually

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
PDF_NAME = "Rechnung März.pdf"
TOKEN = "EAA-simulated-token"
ACCOUNT = "AC" + "3" * 32
CONTENT_SID = "HX" + "c" * 32


@dataclass(frozen=True)
class Messenger:
    """One provider as the simulator plays it, and where its send names our file."""

    provider: str
    source: str
    customer: str
    settings: dict[str, Any]
    path: str  # where its sends arrive at the simulator
    control: dict[str, Any] = field(default_factory=dict)

    async def prepare(self, simulator: Simulator) -> None:
        async with simulator.client() as control:
            if self.provider in ("messenger", "whatsapp"):
                kind = "page" if self.provider == "messenger" else "phone_number"
                account = {"kind": kind, "access_token": TOKEN}
                assert (await control.put(f"/_sim/meta/accounts/{self.source}", json=account)).status_code == 200
                window = {"account": self.source, "customer": self.customer, "open": True}
                assert (await control.post("/_sim/meta/windows", json=window)).status_code == 200
            elif self.provider == "twilio":
                credentials = {"auth_token": "t"}
                assert (await control.put(f"/_sim/twilio/accounts/{ACCOUNT}", json=credentials)).status_code == 200
                window = {"account_sid": ACCOUNT, "customer": self.customer, "open": True}
                assert (await control.post("/_sim/twilio/windows", json=window)).status_code == 200

    def link(self, body: Any) -> str | None:
        """The URL the messenger was given for our file (None: Telegram, which gets the bytes)."""
        if self.provider == "messenger":
            return str(body["message"]["attachment"]["payload"]["url"])
        if self.provider == "whatsapp":
            return str(body["document"]["link"])
        if self.provider == "twilio":
            return str(body["MediaUrl"])
        if self.provider == "acme":
            return str(body["attachments"][0]["url"])
        return None


def messengers(simulator_url: str = "") -> list[Messenger]:
    meta = {"access_token": TOKEN, "app_secret": "s", "verify_token": "v"}
    return [
        Messenger("telegram", "123456789", "1111", {"bot_token": "123456789:AAH-simulated_token"}, "/telegram/bot"),
        Messenger(
            "messenger",
            "1122",
            "psid-77",
            {"page_access_token": TOKEN, "app_secret": "s", "verify_token": "v"},
            "/graph/v21.0/1122/messages",
        ),
        Messenger("whatsapp", "5566", "4917612345678", meta, "/graph/v21.0/5566/messages"),
        Messenger(
            "twilio",
            "+14155238886",
            "+4917612345678",
            {"account_sid": ACCOUNT, "auth_token": "t"},
            f"/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        ),
        Messenger("acme", "bot-1", "cust-1", {"secret": "s3cret"}, "/thirdparty/acme/outgoing"),
    ]


@dataclass
class Desk:
    channel_id: str
    operator_id: str
    token: str


async def open_desk(stack: Stack, simulator: Simulator, messenger: Messenger) -> Desk:
    """Ingress, router and dispatcher; one online operator; the messenger's channel into its queue."""
    await stack.start("ingress", "router", "dispatcher")
    settings = dict(messenger.settings)
    if messenger.provider == "acme":
        settings["outgoing_url"] = f"{simulator.url}/thirdparty/acme/outgoing"
    async with stack.admin() as admin:
        operator = (await admin.post("/api/admin/operators", json={"name": "Olga", "max_chats": 5})).json()
        queue = await admin.post(
            "/api/admin/queues", json={"name": "support", "routing_rule": "to_all", "operator_ids": [operator["id"]]}
        )
        channel = await admin.post(
            "/api/admin/channels",
            json={
                "name": f"Acme {messenger.provider}",
                "provider": messenger.provider,
                "source": messenger.source,
                "queue_id": queue.json()["id"],
                "settings": settings,
            },
        )
        assert channel.status_code == 201, channel.text
    async with stack.client("router", operator["token"]) as client:
        assert (await client.put("/api/operator/status", json={"status": "online"})).status_code == 200
    await messenger.prepare(simulator)
    return Desk(channel.json()["id"], operator["id"], operator["token"])


async def customer_writes(stack: Stack, db: Database, desk: Desk, messenger: Messenger, ago: timedelta) -> str:
    """The customer's message as ingress publishes it, the messenger's clock `ago` in the past; its chat's id."""
    provider_message_id = uuid4().hex
    message = UnifiedMessage(
        provider=messenger.provider,
        channel_id=desk.channel_id,
        provider_message_id=provider_message_id,
        sender=messenger.customer,
        sender_name="Ann Customer",
        recipient=messenger.source,
        sent_at=datetime.now(UTC) - ago,
        text="Can you send me the invoice?",
    )
    await publish(stack.settings, MessageReceived(message=message))
    stored = await eventually(
        lambda: db.messages.find_one({"provider_message_id": provider_message_id, "routed": True}), timeout=20
    )
    return str(stored["chat_id"])


async def settled(db: Database, message_id: str) -> Document:
    async def check() -> Document | None:
        doc = await db.messages.find_one({"_id": message_id})
        return doc if doc and doc["status"] not in ("queued",) else None

    return await eventually(check, timeout=20)


async def upload(client: httpx.AsyncClient, name: str, content: bytes, content_type: str) -> dict[str, Any]:
    answer = await client.post("/api/files", files={"file": (name, content, content_type)})
    assert answer.status_code == 201, answer.text
    described: dict[str, Any] = answer.json()
    return described


@pytest.mark.parametrize("messenger", messengers(), ids=lambda m: m.provider)
async def test_an_uploaded_file_goes_out_the_providers_own_way(
    stack: Stack, db: Database, simulator: Simulator, messenger: Messenger
) -> None:
    desk = await open_desk(stack, simulator, messenger)
    chat_id = await customer_writes(stack, db, desk, messenger, timedelta(minutes=5))
    async with stack.client("router", desk.token) as client:
        described = await upload(client, PDF_NAME, PDF, "application/pdf")
        assert (described["file_name"], described["content_type"], described["size"]) == (
            PDF_NAME,
            "application/pdf",
            len(PDF),
        )
        mine = await client.get(f"/api/files/{described['file_id']}")  # the uploader may fetch it before it is sent
        assert (mine.status_code, mine.content) == (200, PDF)
        sent = await client.post(
            f"/api/chats/{chat_id}/messages",
            json={"text": "Your invoice", "attachments": [{"file_id": described["file_id"]}]},
        )
        assert sent.status_code == 202, sent.text
        reply = await settled(db, sent.json()["id"])
        assert reply["status"] == "sent", reply.get("failure_reason")
        page = (await client.get(f"/api/chats/{chat_id}/messages")).json()["items"]
        [shown] = [m for m in page if m["id"] == reply["_id"]]
        assert [(a["file_id"], a["file_name"]) for a in shown["attachments"]] == [(described["file_id"], PDF_NAME)]

    requests = [r for r in simulator.state.requests if r.path.startswith(messenger.path) and r.files]
    [send] = requests
    [received] = send.files
    assert received.content == PDF  # the very bytes uploaded, by upload or fetched through ingress's link
    assert hashlib.sha256(received.content).hexdigest() == hashlib.sha256(PDF).hexdigest()
    link = messenger.link(send.body)
    if link is None:
        assert (send.path.rsplit("/", 1)[1], received.part, received.file_name) == (
            "sendDocument",
            "document",
            PDF_NAME,
        )
    else:
        assert link.startswith(f"{stack.settings.public_base_url}/media/{described['file_id']}.")
        assert (received.source, received.status) == ("fetch", 200)


async def test_uploads_are_size_limited_fenced_and_checked_when_attached(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    stack.settings = stack.settings.model_copy(update={"attachment_max_bytes": 1000})
    [acme] = [m for m in messengers() if m.provider == "acme"]
    desk = await open_desk(stack, simulator, acme)
    chat_id = await customer_writes(stack, db, desk, acme, timedelta(minutes=1))
    async with stack.admin() as admin:
        other = (await admin.post("/api/admin/operators", json={"name": "Otto", "max_chats": 5})).json()
    async with stack.client("router", desk.token) as client, stack.client("router", other["token"]) as otto:
        described = await upload(client, "../../etc/notes.txt", b"hello", "text/plain")
        assert described["file_name"] == "notes.txt"  # the name, never a path
        files_before = await stored_files(db)
        big = await client.post("/api/files", files={"file": ("big.bin", b"x" * 1001, "application/octet-stream")})
        assert (big.status_code, big.json()["error"]) == (413, "file_too_large")
        streamed = await client.post(  # no declared length: refused as it streams past the limit
            "/api/files",
            content=_chunked(b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n', 3000),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413
        assert await stored_files(db) == files_before  # nothing kept of either
        not_json = await client.post("/api/files", content=b"{}", headers={"Content-Type": "application/json"})
        other_field = await client.post("/api/files", files={"other": ("a.txt", b"a", "text/plain")})
        for refused in (not_json, other_field):
            assert (refused.status_code, refused.json()["error"]) == (400, "invalid_body")
        assert (await otto.get(f"/api/files/{described['file_id']}")).status_code == 404  # not otto's
        ottos = await upload(otto, "otto.txt", b"otto", "text/plain")
        for file_id in (ottos["file_id"], "0123456789abcdef01234567", "nope"):
            sent = await client.post(f"/api/chats/{chat_id}/messages", json={"attachments": [{"file_id": file_id}]})
            assert (sent.status_code, sent.json()["error"]) == (422, "file_not_found")
        assert (await client.get(f"/api/files/{ottos['file_id']}")).status_code == 404
        assert (await client.get(f"/api/chats/{chat_id}")).json()["status"] == "new"  # refusals accepted nothing
    async with httpx.AsyncClient(base_url=stack.url("router")) as anonymous:
        assert (await anonymous.post("/api/files", files={"file": ("a.txt", b"a")})).status_code == 401


async def stored_files(db: Database) -> list[str]:
    """The files in GridFS, read through GridFS (the stand-in keeps them in tables of its own:
    tests/integration/test_stand_in.py)."""
    return [str(grid_out._id) async for grid_out in AsyncGridFSBucket(db).find({})]


def _chunked(head: bytes, size: int) -> Any:
    async def body() -> Any:
        yield head
        for _ in range(size // 100):
            yield b"y" * 100

    return body()


@pytest.mark.parametrize(
    ("provider", "template", "wire"),
    [
        (
            "whatsapp",
            {"name": "invoice_ready", "language": "en_US", "parameters": ["Ann", "A-17"]},
            {
                "type": "template",
                "template": {
                    "name": "invoice_ready",
                    "language": {"code": "en_US"},
                    "components": [
                        {
                            "type": "body",
                            "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "A-17"}],
                        }
                    ],
                },
            },
        ),
        (
            "twilio",
            {"name": CONTENT_SID, "parameters": ["Ann", "A-17"]},
            {"ContentSid": CONTENT_SID, "ContentVariables": {"1": "Ann", "2": "A-17"}},
        ),
    ],
)
async def test_after_24_hours_free_text_answers_template_required_and_a_template_goes(
    stack: Stack, db: Database, simulator: Simulator, provider: str, template: dict[str, Any], wire: dict[str, Any]
) -> None:
    [messenger] = [m for m in messengers() if m.provider == provider]
    desk = await open_desk(stack, simulator, messenger)
    wrote = timedelta(hours=25)
    chat_id = await customer_writes(stack, db, desk, messenger, wrote)
    async with simulator.client() as control:  # the messenger's own clock agrees: the customer wrote 25 h ago
        if provider == "whatsapp":
            window = {"account": messenger.source, "customer": messenger.customer, "ago_seconds": wrote.total_seconds()}
            assert (await control.post("/_sim/meta/windows", json=window)).status_code == 200
        else:
            window = {"account_sid": ACCOUNT, "customer": messenger.customer, "open": False}
            assert (await control.post("/_sim/twilio/windows", json=window)).status_code == 200
    stored = await db.messages.find_one({"chat_id": chat_id, "direction": "incoming"})
    assert stored is not None
    ends = stored["sent_at"].replace(tzinfo=UTC) + timedelta(hours=24)
    async with stack.client("router", desk.token) as client:
        text = await client.post(f"/api/chats/{chat_id}/messages", json={"text": "Are you still there?"})
        assert text.status_code == 422, text.text
        refused = text.json()
        assert refused["error"] == "template_required" and "only a template may be sent" in refused["detail"]
        assert datetime.fromisoformat(refused["window_ends_at"]) == ends
        assert (await client.get(f"/api/chats/{chat_id}")).json()["status"] == "new"  # the refusal accepted nothing
        both = await client.post(f"/api/chats/{chat_id}/messages", json={"text": "x", "template": template})
        assert (both.status_code, both.json()["error"]) == (400, "invalid_body")
        sent = await client.post(f"/api/chats/{chat_id}/messages", json={"template": template})
        assert sent.status_code == 202, sent.text
        reply = await settled(db, sent.json()["id"])
        assert reply["status"] == "sent", reply.get("failure_reason")
        page = (await client.get(f"/api/chats/{chat_id}/messages")).json()["items"]
        assert [m["template"] for m in page if m["id"] == reply["_id"]] == [
            {"name": template["name"], "language": template.get("language"), "parameters": template["parameters"]}
        ]
    [send] = [r for r in simulator.state.requests if r.path == messenger.path and r.method == "POST"]
    for key, value in wire.items():
        sent_value = json.loads(send.body[key]) if key == "ContentVariables" else send.body[key]
        assert sent_value == value, (key, send.body)
    assert "Body" not in send.body and "text" not in send.body


async def test_a_template_on_a_messenger_without_templates_is_refused_with_the_reason(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    [telegram] = [m for m in messengers() if m.provider == "telegram"]
    desk = await open_desk(stack, simulator, telegram)
    chat_id = await customer_writes(stack, db, desk, telegram, timedelta(days=3))
    async with stack.client("router", desk.token) as client:
        template = {"name": "invoice_ready", "language": "en_US"}
        refused = await client.post(f"/api/chats/{chat_id}/messages", json={"template": template})
        assert refused.status_code == 422
        assert refused.json() == {
            "error": "templates_unsupported",
            "detail": "telegram channels do not send templates",
        }
        free = await client.post(f"/api/chats/{chat_id}/messages", json={"text": "days later, still fine"})
        assert free.status_code == 202


async def test_messenger_replies_after_24_hours_go_tagged_where_the_page_has_the_tag_else_are_refused(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    [messenger] = [m for m in messengers() if m.provider == "messenger"]
    tagged = Messenger(
        messenger.provider,
        messenger.source,
        messenger.customer,
        {**messenger.settings, "human_agent_tag": True},
        messenger.path,
    )
    desk = await open_desk(stack, simulator, tagged)
    two_days = timedelta(days=2)
    chat_id = await customer_writes(stack, db, desk, tagged, two_days)
    async with simulator.client() as control:
        window = {"account": tagged.source, "customer": tagged.customer, "ago_seconds": two_days.total_seconds()}
        assert (await control.post("/_sim/meta/windows", json=window)).status_code == 200
    async with stack.client("router", desk.token) as client:
        sent = await client.post(f"/api/chats/{chat_id}/messages", json={"text": "Sorry for the wait"})
        assert sent.status_code == 202, sent.text
        reply = await settled(db, sent.json()["id"])
        assert reply["status"] == "sent", reply.get("failure_reason")
        [send] = [r for r in simulator.state.requests if r.path == tagged.path and r.method == "POST"]
        assert (send.body["messaging_type"], send.body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
        async with stack.admin() as admin:  # without the page's permission: refused with the reason
            settings = {**messenger.settings, "human_agent_tag": False}
            changed = await admin.patch(f"/api/admin/channels/{desk.channel_id}", json={"settings": settings})
            assert changed.status_code == 200, changed.text
        refused = await eventually(lambda: _refused(client, chat_id))
        assert refused["error"] == "reply_window_closed" and "HUMAN_AGENT" in refused["detail"]
        assert refused["window_ends_at"] is not None


async def _refused(client: httpx.AsyncClient, chat_id: str) -> dict[str, Any] | None:
    """The answer to free text once the router reads the changed channel (its settings cache lasts a moment)."""
    answer = await client.post(f"/api/chats/{chat_id}/messages", json={"text": "and again"})
    if answer.status_code == 202:
        return None
    assert answer.status_code == 422, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_large_upload_streams_through_without_being_held_in_memory(stack: Stack, db: Database) -> None:
    """A 20 MiB file goes into GridFS in pieces: the process never holds as much as the file (the
    router, this test's client and the driver all run in this process, traced together)."""
    size = 20 * 1024 * 1024
    await stack.start("router")
    async with stack.admin() as admin:
        operator = (await admin.post("/api/admin/operators", json={"name": "O", "max_chats": 5})).json()
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    block = bytes(range(256)) * 256  # 64 KiB

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(size // len(block)):
            yield block
        yield b"\r\n--b--\r\n"

    async with stack.client("router", operator["token"]) as client:
        tracemalloc.start()
        try:
            answer = await client.post(
                "/api/files", content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=120
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert answer.status_code == 201, answer.text
        assert answer.json()["size"] == size
        assert peak < size, f"{peak} bytes held at most"  # whole, it was 3.7 times the size (48 MB batches)
        stored = await client.get(f"/api/files/{answer.json()['file_id']}")
    assert len(stored.content) == size and stored.content[: len(block)] == block
