"""Operators' files go out through each messenger's own way (issue 13 item 6): Telegram by multipart upload, Graph,
WhatsApp, Twilio and third-party providers by a signed, expiring link to ingress's `GET /media/{token}`, which the
simulator fetches as the messenger would. Replies are queued as the router queues them (tests/support/outbound.py)."""

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId

from omni_providers.media import MediaLinks
from omni_runtime.database import Database
from tests.support.outbound import add_channel, add_chat, queue_reply, settled, store_file
from tests.support.stack import MEDIA_SIGNING_KEY, Simulator, Stack

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
PDF_NAME = "Rechnung März.pdf"
PDF_DISPOSITION = "attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 30 + b"\xff\xd9"
CUSTOMER = "4917612345678"
META_TOKEN = "EAA-simulated-token"
ACCOUNT = "AC" + "1" * 32


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class UrlProvider:
    """How one URL-fetching messenger is set up in the simulator and where its send names the file's link."""

    name: str
    source: str
    settings: dict[str, Any]
    path: str  # where its sends arrive at the simulator

    async def prepare(self, simulator: Simulator, customer: str) -> None:
        async with simulator.client() as control:
            if self.name in ("messenger", "whatsapp"):
                kind = "page" if self.name == "messenger" else "phone_number"
                account = {"kind": kind, "access_token": META_TOKEN}
                assert (await control.put(f"/_sim/meta/accounts/{self.source}", json=account)).status_code == 200
                window = {"account": self.source, "customer": customer, "open": True}
                assert (await control.post("/_sim/meta/windows", json=window)).status_code == 200
            elif self.name == "twilio":
                credentials = {"auth_token": "t"}
                assert (await control.put(f"/_sim/twilio/accounts/{ACCOUNT}", json=credentials)).status_code == 200
                window = {"account_sid": ACCOUNT, "customer": customer, "open": True}
                assert (await control.post("/_sim/twilio/windows", json=window)).status_code == 200

    def link(self, body: Any) -> str:
        if self.name == "messenger":
            return str(body["message"]["attachment"]["payload"]["url"])
        if self.name == "whatsapp":
            return str(body["document"]["link"])
        if self.name == "twilio":
            return str(body["MediaUrl"])
        return str(body["attachments"][0]["url"])


def url_providers() -> list[UrlProvider]:
    return [
        UrlProvider(
            "messenger",
            "1122",
            {"page_access_token": META_TOKEN, "app_secret": "s", "verify_token": "v"},
            "/graph/v21.0/1122/messages",
        ),
        UrlProvider(
            "whatsapp",
            "5566",
            {"access_token": META_TOKEN, "app_secret": "s", "verify_token": "v"},
            "/graph/v21.0/5566/messages",
        ),
        UrlProvider(
            "twilio",
            "+14155238886",
            {"account_sid": ACCOUNT, "auth_token": "t"},
            f"/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        ),
        UrlProvider("acme", "bot-1", {"secret": "s3cret"}, "/thirdparty/acme/outgoing"),
    ]


@pytest.mark.parametrize("provider", url_providers(), ids=lambda p: p.name)
async def test_url_messengers_fetch_our_file_through_a_signed_link_to_ingress(
    stack: Stack, db: Database, simulator: Simulator, provider: UrlProvider
) -> None:
    await stack.start("ingress", "dispatcher")
    settings = dict(provider.settings)
    if provider.name == "acme":
        settings["outgoing_url"] = f"{simulator.url}/thirdparty/acme/outgoing"
    channel_id = await add_channel(db, provider.name, provider.source, settings)
    chat_id = await add_chat(db, channel_id, CUSTOMER, wrote_at=datetime.now(UTC))
    await provider.prepare(simulator, CUSTOMER)
    file_id = await store_file(db, PDF_NAME, "application/pdf", PDF)

    reply_id = await queue_reply(
        db,
        stack.settings,
        chat_id=chat_id,
        channel_id=channel_id,
        provider=provider.name,
        recipient=CUSTOMER,
        text="Your invoice",
        file_ids=[file_id],
    )
    reply = await settled(db, reply_id)
    assert reply["status"] == "sent", reply.get("failure_reason")

    [send] = [r for r in simulator.state.requests if r.path == provider.path and r.files]
    link = provider.link(send.body)
    assert link.startswith(f"{stack.settings.public_base_url}/media/{file_id}.")
    [fetched] = send.files
    assert (fetched.source, fetched.url, fetched.status, fetched.error) == ("fetch", link, 200, None)
    assert fetched.content == PDF  # the messenger got the very bytes in GridFS, through ingress
    assert fetched.headers["content-type"] == "application/pdf"
    assert fetched.headers["content-disposition"] == PDF_DISPOSITION
    assert fetched.headers["x-content-type-options"] == "nosniff"
    assert fetched.headers["content-security-policy"] == "default-src 'none'; sandbox"
    async with simulator.client() as control:
        recorded = (await control.get("/_sim/requests", params={"path_prefix": provider.path})).json()["items"]
        [described] = [r["files"][0] for r in recorded if r["files"]]
        assert (described["size"], described["sha256"]) == (len(PDF), sha256(PDF))
        as_served = await control.get(f"/_sim/requests/{send.seq}/files/0")
    assert as_served.content == PDF


async def test_telegram_uploads_our_files_as_multipart_photo_and_document(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    # No signing key: uploads do not need links, so Telegram sends files without one.
    stack.settings = stack.settings.model_copy(update={"media_signing_key": None})
    await stack.start("dispatcher")
    channel_id = await add_channel(db, "telegram", "123456789", {"bot_token": "123456789:AAH-simulated_token"})
    chat_id = await add_chat(db, channel_id, "1111", wrote_at=datetime.now(UTC))
    photo = await store_file(db, "dent.jpg", "image/jpeg", JPEG)
    invoice = await store_file(db, PDF_NAME, "application/pdf", PDF)

    reply_id = await queue_reply(
        db,
        stack.settings,
        chat_id=chat_id,
        channel_id=channel_id,
        provider="telegram",
        recipient="1111",
        text="The dent, and your invoice",
        file_ids=[photo, invoice],
    )
    reply = await settled(db, reply_id)
    assert reply["status"] == "sent", reply.get("failure_reason")
    sends = [r for r in simulator.state.requests if r.path.startswith("/telegram/bot")]
    assert [(r.path.rsplit("/", 1)[1], r.status) for r in sends] == [("sendPhoto", 200), ("sendDocument", 200)]
    first, second = sends
    assert first.headers["content-type"].startswith("multipart/form-data")
    assert (first.body["chat_id"], first.body["caption"]) == ("1111", "The dent, and your invoice")
    [uploaded_photo] = first.files
    [uploaded_pdf] = second.files
    assert (uploaded_photo.part, uploaded_photo.file_name, uploaded_photo.content_type) == (
        "photo",
        "dent.jpg",
        "image/jpeg",
    )
    assert uploaded_photo.content == JPEG
    assert (uploaded_pdf.part, uploaded_pdf.file_name, uploaded_pdf.content == PDF) == ("document", PDF_NAME, True)
    assert "caption" not in second.body
    assert reply["provider_message_id"] == "1111:2"  # the last part's message id


async def test_without_a_signing_key_a_file_for_a_url_messenger_fails_with_the_reason(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    stack.settings = stack.settings.model_copy(update={"media_signing_key": None})
    await stack.start("dispatcher")
    channel_id = await add_channel(
        db, "acme", "bot-1", {"secret": "s3cret", "outgoing_url": f"{simulator.url}/thirdparty/acme/outgoing"}
    )
    chat_id = await add_chat(db, channel_id, CUSTOMER, wrote_at=None)
    file_id = await store_file(db, "a.pdf", "application/pdf", PDF)
    reply_id = await queue_reply(
        db,
        stack.settings,
        chat_id=chat_id,
        channel_id=channel_id,
        provider="acme",
        recipient=CUSTOMER,
        file_ids=[file_id],
    )
    reply = await settled(db, reply_id)
    assert reply["status"] == "failed"
    assert (
        reply["failure_reason"] == "acme fetches files by URL, and media links are off (MEDIA_SIGNING_KEY is not set)"
    )
    assert simulator.state.select("/thirdparty/") == []
    missing = await queue_reply(
        db,
        stack.settings,
        chat_id=chat_id,
        channel_id=channel_id,
        provider="acme",
        recipient=CUSTOMER,
        file_ids=[str(ObjectId())],
    )
    gone = await settled(db, missing)
    assert gone["status"] == "failed" and gone["failure_reason"].endswith("is not stored, so it cannot be sent")


async def test_media_links_serve_one_file_until_they_expire_and_nothing_else(stack: Stack, db: Database) -> None:
    await stack.start("ingress")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    file_id = await store_file(db, "chart.png", "image/png", png)
    html = await store_file(db, "page.html", "text/html", b"<script>alert(1)</script>")
    links = MediaLinks(MEDIA_SIGNING_KEY, 600, stack.settings.public_base_url)
    async with stack.client("ingress") as ingress:
        good = await ingress.get(links.url_for(file_id, time.time()))
        assert (good.status_code, good.content) == (200, png)
        assert good.headers["content-type"] == "image/png"
        assert good.headers["content-disposition"] == 'inline; filename="chart.png"'
        assert good.headers["x-content-type-options"] == "nosniff"
        assert good.headers["cache-control"] == "no-store"
        head = await ingress.head(links.url_for(file_id, time.time()))
        assert (head.status_code, head.headers["content-length"], head.content) == (200, str(len(png)), b"")
        active = await ingress.get(links.url_for(html, time.time()))
        assert active.headers["content-disposition"] == 'attachment; filename="page.html"'
        assert active.headers["content-security-policy"] == "default-src 'none'; sandbox"

        expired = await ingress.get(f"/media/{links.token_for(file_id, int(time.time()) - 1)}")
        assert (expired.status_code, expired.json()["error"]) == (403, "link_expired")
        token = links.token_for(file_id, int(time.time()) + 600)
        other_file = token.replace(file_id, html)
        foreign = MediaLinks("another signing key of 32 characters!", 600, "http://x").token_for(file_id, 2**31)
        unknown = links.token_for(str(ObjectId()), int(time.time()) + 600)
        for path in (
            f"/media/{other_file}",
            f"/media/{token[:-2]}",
            f"/media/{foreign}",
            f"/media/{unknown}",
            f"/media/{file_id}",
            "/media/..%2F..%2Fetc%2Fpasswd",
            f"/media/{token}/x",
        ):
            answer = await ingress.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["error"] == "not_found" and png not in answer.content
        assert (await ingress.post(f"/media/{token}")).status_code == 405


async def test_without_a_signing_key_ingress_serves_no_media(stack: Stack, db: Database) -> None:
    stack.settings = stack.settings.model_copy(update={"media_signing_key": None})
    await stack.start("ingress")
    file_id = await store_file(db, "chart.png", "image/png", b"\x89PNG")
    token = MediaLinks(MEDIA_SIGNING_KEY, 600, "http://x").token_for(file_id, int(time.time()) + 600)
    async with httpx.AsyncClient(base_url=stack.url("ingress")) as ingress:
        assert (await ingress.get(f"/media/{token}")).status_code == 404
