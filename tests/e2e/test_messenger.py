"""Facebook Messenger end to end: page webhooks in Meta's format through ingress, replies out to the Graph API simulator."""

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from bson import ObjectId
from gridfs import AsyncGridFSBucket

from omni_runtime.database import Database, Document
from tests.support.stack import Simulator, Stack, eventually

pytestmark = pytest.mark.e2e

PAGE_ID = "104857600"
TOKEN = "EAAGm0PX4ZCpsBA-page-token"
APP_SECRET = "6f2ad3c1-app-secret"
VERIFY_TOKEN = "verify-me-please"
PSID = "2470159726410364"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@dataclass
class Page:
    channel_id: str
    operator_id: str
    token: str


async def open_page(stack: Stack, simulator: Simulator, *services: str) -> Page:
    """Ingress, router and dispatcher (plus `services`), one online operator and a Messenger channel for PAGE_ID."""
    await stack.start("ingress", "router", "dispatcher", *services)
    async with stack.admin() as admin:
        operator = (await admin.post("/api/admin/operators", json={"name": "Olga", "max_chats": 5})).json()
        queue = await admin.post(
            "/api/admin/queues", json={"name": "support", "routing_rule": "to_all", "operator_ids": [operator["id"]]}
        )
        settings = {"page_access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}
        channel = await admin.post(
            "/api/admin/channels",
            json={
                "name": "Acme page",
                "provider": "messenger",
                "source": PAGE_ID,
                "queue_id": queue.json()["id"],
                "settings": settings,
            },
        )
        assert channel.status_code == 201, channel.text
        assert "settings" not in channel.json() or TOKEN not in json.dumps(channel.json())
    async with stack.client("router", operator["token"]) as client:
        assert (await client.put("/api/operator/status", json={"status": "online"})).status_code == 200
    async with simulator.client() as control:
        account = {"kind": "page", "access_token": TOKEN, "name": "Acme"}
        assert (await control.put(f"/_sim/meta/accounts/{PAGE_ID}", json=account)).status_code == 200
    return Page(channel.json()["id"], operator["id"], operator["token"])


def event(*items: dict[str, Any], page: str = PAGE_ID) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": page, "time": int(time.time() * 1000), "messaging": list(items)}]}


def message(mid: str, text: str | None = None, psid: str = PSID, ago: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A messaging item of a customer message, Meta's timestamp `ago` seconds in the past."""
    content: dict[str, Any] = {"mid": mid, **fields}
    if text is not None:
        content["text"] = text
    sent = int((time.time() - ago) * 1000)
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": sent, "message": content}


def receipt(kind: str, **fields: Any) -> dict[str, Any]:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": int(time.time() * 1000), kind: fields}


async def push(stack: Stack, simulator: Simulator, body: Any = None, **options: Any) -> tuple[int, Any]:
    """The simulator posts the body to ingress as Meta does, signed with the app secret unless told otherwise."""
    request = {"ingress_url": stack.url("ingress"), "app_secret": APP_SECRET, **options}
    if "raw" not in options:
        request["body"] = body
    async with simulator.client() as control:
        answer = await control.post("/_sim/meta/push/messenger", json=request)
    assert answer.status_code == 200, answer.text
    return answer.json()["status"], answer.json()["body"]


async def stored(db: Database, mid: str) -> Document:
    return await eventually(lambda: db.messages.find_one({"provider_message_id": mid, "routed": True}))


async def accept_and_reply(stack: Stack, page: Page, chat_id: str, text: str) -> str:
    async with stack.client("router", page.token) as client:
        assert (await client.post(f"/api/chats/{chat_id}/accept")).status_code == 200
        answer = await client.post(f"/api/chats/{chat_id}/messages", json={"text": text})
    assert answer.status_code == 202, answer.text
    reply_id: str = answer.json()["id"]
    return reply_id


async def status_of(db: Database, message_id: str, *wanted: str) -> Document:
    async def check() -> Document | None:
        doc = await db.messages.find_one({"_id": message_id})
        return doc if doc and doc["status"] in wanted else None

    return await eventually(check, timeout=20)


async def sends(simulator: Simulator) -> list[dict[str, Any]]:
    return [r for r in await simulator.requests("/graph/") if r["method"] == "POST"]


async def test_text_and_media_reach_the_operator_and_the_reply_goes_out_in_send_api_format(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    page = await open_page(stack, simulator, "profiles", "attachments")
    async with simulator.client() as control:
        profile = {"first_name": "Ann", "last_name": "Lee", "profile_pic": "https://cdn.example/ann.jpg"}
        await control.put(f"/_sim/meta/profiles/{PSID}", json=profile)
        photo_url = (
            await control.put("/_sim/files/ann-photo.png", content=PHOTO, headers={"Content-Type": "image/png"})
        ).json()["url"]

    photo = {"type": "image", "payload": {"url": photo_url}}
    assert (await push(stack, simulator, event(message("m_text", "Hello, is anyone there?"))))[0] == 200
    assert (await push(stack, simulator, event(message("m_photo", "my broken phone", attachments=[photo]))))[0] == 200

    text = await stored(db, "m_text")
    assert (text["type"], text["text"], text["direction"]) == ("text", "Hello, is anyone there?", "incoming")
    media = await stored(db, "m_photo")
    assert (media["type"], media["text"], media["chat_id"]) == ("image", "my broken phone", text["chat_id"])

    async def attachment_stored() -> Document | None:
        doc = await db.messages.find_one({"_id": media["_id"]})
        return doc if doc and doc["attachments"][0]["status"] == "stored" else None

    attachment = (await eventually(attachment_stored))["attachments"][0]
    assert (attachment["size"], attachment["content_type"]) == (len(PHOTO), "image/png")
    stream = await AsyncGridFSBucket(db).open_download_stream(ObjectId(attachment["file_id"]))
    assert await stream.read() == PHOTO

    async def named() -> Document | None:
        async with stack.client("router", page.token) as client:
            chat: Document = (await client.get(f"/api/chats/{text['chat_id']}")).json()
        return chat if chat["contact"]["name"] == "Ann Lee" else None

    await eventually(named)
    contact = await db.contacts.find_one({"channel_id": page.channel_id, "external_id": PSID})
    assert contact is not None and contact["photo_url"] == "https://cdn.example/ann.jpg"

    reply_id = await accept_and_reply(stack, page, text["chat_id"], "Hi Ann, sorry about the phone!")
    sent = await status_of(db, reply_id, "sent")
    [request] = await sends(simulator)
    assert request["path"] == f"/graph/v21.0/{PAGE_ID}/messages"
    assert request["body"] == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hi Ann, sorry about the phone!"},
    }
    assert request["signature_valid"] is True  # the page token came and was the page's
    assert sent["provider_message_id"] == request["answer_message_id"]
    assert TOKEN not in json.dumps(await simulator.requests("/graph/"))

    # Receipts: by mid first, then a read watermark that covers every message sent before it.
    delivered = receipt("delivery", mids=[sent["provider_message_id"]], watermark=int(time.time() * 1000))
    assert (await push(stack, simulator, event(delivered)))[0] == 200
    await status_of(db, reply_id, "delivered")
    assert (await push(stack, simulator, event(receipt("read", watermark=int(time.time() * 1000) + 1))))[0] == 200
    await status_of(db, reply_id, "read")


async def test_signature_wrong_missing_or_body_altered_is_401_and_metas_own_scheme_passes(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await open_page(stack, simulator)
    body = event(message("m_sig", "signed?"))
    assert (await push(stack, simulator, body, app_secret="not-the-app-secret"))[0] == 401
    assert (await push(stack, simulator, body, omit_signature=True))[0] == 401
    assert (await push(stack, simulator, body, alter_after_signing=True))[0] == 401
    # Signed over one body, sent with another: the text changed on the way.
    original = json.dumps(body).encode()
    forged = original.replace(b"signed?", b"send me the refund")
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": _meta_signature(original)}
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/messenger", content=forged, headers=headers)).status_code == 401
        # Meta's scheme computed here with hashlib alone: sha256=<hex HMAC-SHA256(app secret, raw body)>.
        assert (await ingress.post("/webhooks/messenger", content=original, headers=headers)).status_code == 200
    await stored(db, "m_sig")
    assert await db.messages.count_documents({"provider_message_id": "m_sig"}) == 1


def _meta_signature(raw: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()


async def test_verification_handshake(stack: Stack, simulator: Simulator) -> None:
    await open_page(stack, simulator)
    async with simulator.client() as control:
        ok = (
            await control.post(
                "/_sim/meta/verify",
                json={"ingress_url": stack.url("ingress"), "provider": "messenger", "verify_token": VERIFY_TOKEN},
            )
        ).json()
        wrong = (
            await control.post(
                "/_sim/meta/verify",
                json={"ingress_url": stack.url("ingress"), "provider": "messenger", "verify_token": "guess"},
            )
        ).json()
    assert ok["verified"] is True and ok["content_type"].startswith("text/plain")
    assert wrong["status"] == 403 and wrong["verified"] is False


async def test_several_messages_kept_echo_ignored_duplicates_stored_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    page = await open_page(stack, simulator)
    body = event(message("m_1", "one"), message("m_2", "two", psid="2470159726410999"))
    body["entry"].append(event(message("m_3", "three"), message("m_echo", "our own words", is_echo=True))["entry"][0])
    status, answer = await push(stack, simulator, body)
    assert (status, answer["messages"]) == (200, 3)
    assert (await push(stack, simulator, body))[0] == 200  # Meta re-sends: same 200, nothing twice
    for mid in ("m_1", "m_2", "m_3"):
        await stored(db, mid)
    assert await db.messages.count_documents({"channel_id": page.channel_id}) == 3
    assert await db.messages.find_one({"provider_message_id": "m_echo"}) is None
    assert await db.chats.count_documents({"channel_id": page.channel_id}) == 2


async def test_reply_outside_the_24_hour_window_is_refused_with_the_reason(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    page = await open_page(stack, simulator)
    # The window runs from the time Meta gives the customer's message, not from when we stored it.
    old = message("m_old", "are you open on sunday?", ago=25 * 3600)
    assert (await push(stack, simulator, event(old)))[0] == 200
    incoming = await stored(db, "m_old")
    # The router refuses it at once (the dispatcher would refuse it again at send time).
    async with stack.client("router", page.token) as client:
        refused = await client.post(f"/api/chats/{incoming['chat_id']}/messages", json={"text": "sorry, late"})
    assert refused.status_code == 422
    assert refused.json()["error"] == "reply_window_closed"
    assert "24-hour reply window" in refused.json()["detail"] and refused.json()["window_ends_at"]
    assert await sends(simulator) == []  # refused here, never sent for Meta to reject


async def test_malformed_payloads_are_400_and_unknown_pages_404(stack: Stack, simulator: Simulator) -> None:
    await open_page(stack, simulator)
    assert (await push(stack, simulator, raw='{"object": "page", "entry": [{"id": "' + PAGE_ID + '"'))[0] == 400
    bad_item = event({"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "message": {"text": "no mid"}})
    assert (await push(stack, simulator, bad_item))[0] == 400
    assert (await push(stack, simulator, {"object": "page", "entry": []}))[0] == 400
    assert (await push(stack, simulator, event(message("m_x", "hi"), page="999")))[0] == 404


async def test_register_checks_the_page_token(stack: Stack, simulator: Simulator) -> None:
    page = await open_page(stack, simulator)
    async with stack.admin() as admin:
        registered = (await admin.post(f"/api/admin/channels/{page.channel_id}/register")).json()
        assert registered["registration"]["ok"] is True, registered
        wrong = {"page_access_token": "EAA-revoked", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}
        assert (
            await admin.patch(f"/api/admin/channels/{page.channel_id}", json={"settings": wrong})
        ).status_code == 200
        refused = (await admin.post(f"/api/admin/channels/{page.channel_id}/register")).json()
    assert refused["registration"]["ok"] is False
    assert "190" in refused["registration"]["detail"] and "EAA-revoked" not in json.dumps(refused)


async def test_register_subscribes_the_page_to_the_apps_webhooks_and_reports_a_refusal(
    stack: Stack, simulator: Simulator
) -> None:
    page = await open_page(stack, simulator)
    subscriptions = f"/graph/v21.0/{PAGE_ID}/subscribed_apps"
    async with stack.admin() as admin:
        registered = (await admin.post(f"/api/admin/channels/{page.channel_id}/register")).json()["registration"]
    assert (registered["ok"], registered["detail"]) == (
        True,
        "page token valid for Acme; page subscribed to the app's webhooks "
        "(messages,messaging_postbacks,message_deliveries,message_reads)",
    )
    [subscribe] = await simulator.requests(subscriptions)
    assert (subscribe["method"], subscribe["status"]) == ("POST", 200)
    assert subscribe["body"] == {"subscribed_fields": "messages,messaging_postbacks,message_deliveries,message_reads"}
    async with simulator.client() as control:
        apps = (await control.get(subscriptions, params={"access_token": TOKEN})).json()["data"]
    assert apps[0]["subscribed_fields"] == ["messages", "messaging_postbacks", "message_deliveries", "message_reads"]

    refusal = {
        "error": {"message": "(#200) Requires pages_messaging permission", "type": "OAuthException", "code": 200}
    }
    await simulator.fault(
        path_prefix=subscriptions, status=403, count=1, body=json.dumps(refusal), content_type="application/json"
    )
    async with stack.admin() as admin:
        refused = (await admin.post(f"/api/admin/channels/{page.channel_id}/register")).json()["registration"]
    assert refused["ok"] is False
    assert refused["detail"] == (
        "page token valid for Acme, but subscribing the page to the app's webhooks failed: Graph API "
        "subscribed_apps refused (Graph error 200): (#200) Requires pages_messaging permission"
    )
    assert TOKEN not in json.dumps(await simulator.requests(subscriptions))


async def test_graph_rate_limit_is_retried_and_the_reply_sent_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    page = await open_page(stack, simulator)
    assert (await push(stack, simulator, event(message("m_busy", "hello?"))))[0] == 200
    incoming = await stored(db, "m_busy")
    limit = {
        "error": {
            "message": "(#613) Calls to this api have exceeded the rate limit.",
            "type": "OAuthException",
            "code": 613,
        }
    }
    await simulator.fault(
        path_prefix="/graph/v21.0/", status=400, count=1, body=json.dumps(limit), content_type="application/json"
    )
    reply_id = await accept_and_reply(stack, page, incoming["chat_id"], "here we are")
    await status_of(db, reply_id, "sent")
    assert [r["status"] for r in await sends(simulator)] == [400, 200]
