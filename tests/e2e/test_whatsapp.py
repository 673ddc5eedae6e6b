"""WhatsApp Cloud API end to end: business account webhooks through ingress, replies out to the Graph API simulator."""

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

PHONE_NUMBER_ID = "106540352242922"
TOKEN = "EAAJB-whatsapp-system-user-token"
APP_SECRET = "b7f3e2d1-app-secret"
VERIFY_TOKEN = "wa-verify-me"
CUSTOMER = "4917612345678"
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 50


@dataclass
class Number:
    channel_id: str
    operator_id: str
    token: str


async def open_number(stack: Stack, simulator: Simulator, *services: str) -> Number:
    """Ingress, router and dispatcher (plus `services`), one online operator and a WhatsApp channel."""
    await stack.start("ingress", "router", "dispatcher", *services)
    async with stack.admin() as admin:
        operator = (await admin.post("/api/admin/operators", json={"name": "Olga", "max_chats": 5})).json()
        queue = await admin.post(
            "/api/admin/queues", json={"name": "support", "routing_rule": "to_all", "operator_ids": [operator["id"]]}
        )
        channel = await admin.post(
            "/api/admin/channels",
            json={
                "name": "Acme WhatsApp",
                "provider": "whatsapp",
                "source": PHONE_NUMBER_ID,
                "queue_id": queue.json()["id"],
                "settings": {"access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
            },
        )
        assert channel.status_code == 201, channel.text
        assert TOKEN not in channel.text and APP_SECRET not in channel.text
    async with stack.client("router", operator["token"]) as client:
        assert (await client.put("/api/operator/status", json={"status": "online"})).status_code == 200
    async with simulator.client() as control:
        account = {"kind": "phone_number", "access_token": TOKEN, "name": "Acme Support"}
        assert (await control.put(f"/_sim/meta/accounts/{PHONE_NUMBER_ID}", json=account)).status_code == 200
    return Number(channel.json()["id"], operator["id"], operator["token"])


def event(number: str = PHONE_NUMBER_ID, **value: Any) -> dict[str, Any]:
    """A `whatsapp_business_account` webhook with one `messages` change."""
    metadata = {"display_phone_number": "15550783881", "phone_number_id": number}
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": metadata, **value}}
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [change]}]}


def contact(name: str = "Ann Customer", wa_id: str = CUSTOMER) -> dict[str, Any]:
    return {"profile": {"name": name}, "wa_id": wa_id}


def message(wamid: str, kind: str, content: dict[str, Any], sender: str = CUSTOMER, ago: float = 0.0) -> dict[str, Any]:
    """A customer message, WhatsApp's timestamp `ago` seconds in the past."""
    return {"from": sender, "id": wamid, "timestamp": str(int(time.time() - ago)), "type": kind, kind: content}


def status(wamid: str, state: str, **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": state, "timestamp": str(int(time.time())), "recipient_id": CUSTOMER, **extra}


async def push(stack: Stack, simulator: Simulator, body: Any = None, **options: Any) -> tuple[int, Any]:
    request = {"ingress_url": stack.url("ingress"), "app_secret": APP_SECRET, **options}
    if "raw" not in options:
        request["body"] = body
    async with simulator.client() as control:
        answer = await control.post("/_sim/meta/push/whatsapp", json=request)
    assert answer.status_code == 200, answer.text
    return answer.json()["status"], answer.json()["body"]


async def stored(db: Database, wamid: str) -> Document:
    return await eventually(lambda: db.messages.find_one({"provider_message_id": wamid, "routed": True}))


async def accept_and_reply(stack: Stack, number: Number, chat_id: str, text: str) -> str:
    async with stack.client("router", number.token) as client:
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


async def test_text_and_captioned_image_reach_the_operator_and_the_reply_goes_out_in_cloud_api_format(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    number = await open_number(stack, simulator, "profiles", "attachments")
    async with simulator.client() as control:
        uploaded = await control.put("/_sim/meta/media/1047263", content=PHOTO, headers={"Content-Type": "image/jpeg"})
    image = {"id": "1047263", "mime_type": "image/jpeg", "sha256": uploaded.json()["sha256"], "caption": "the dent"}
    body = event(
        contacts=[contact()], messages=[message("wamid.TEXT1", "text", {"body": "Hi, my order arrived broken"})]
    )
    assert (await push(stack, simulator, body))[0] == 200
    captioned = event(contacts=[contact()], messages=[message("wamid.IMG1", "image", image)])
    assert (await push(stack, simulator, captioned))[0] == 200

    text = await stored(db, "wamid.TEXT1")
    assert (text["type"], text["text"], text["sender"]) == ("text", "Hi, my order arrived broken", CUSTOMER)
    photo = await stored(db, "wamid.IMG1")
    assert (photo["type"], photo["text"], photo["chat_id"]) == ("image", "the dent", text["chat_id"])

    async def attachment_stored() -> Document | None:
        doc = await db.messages.find_one({"_id": photo["_id"]})
        return doc if doc and doc["attachments"][0]["status"] == "stored" else None

    attachment = (await eventually(attachment_stored))["attachments"][0]
    assert (attachment["size"], attachment["content_type"]) == (len(PHOTO), "image/jpeg")
    stream = await AsyncGridFSBucket(db).open_download_stream(ObjectId(attachment["file_id"]))
    assert await stream.read() == PHOTO
    media_calls = [r for r in await simulator.requests("/graph/") if r["method"] == "GET"]
    # The media id was resolved, then the file fetched, each with the channel's bearer token.
    assert [(r["path"], r["status"]) for r in media_calls] == [
        ("/graph/v21.0/1047263", 200),
        ("/graph/media/1047263", 200),
    ]
    assert all(r["headers"]["authorization"] == "Bearer ***" for r in media_calls)

    async with stack.client("router", number.token) as client:
        chat = (await client.get(f"/api/chats/{text['chat_id']}")).json()
    assert chat["contact"]["name"] == "Ann Customer"  # contacts[].profile.name, from the webhook itself

    reply_id = await accept_and_reply(stack, number, text["chat_id"], "So sorry! A new one is on its way.")
    sent = await status_of(db, reply_id, "sent")
    [request] = await sends(simulator)
    assert request["path"] == f"/graph/v21.0/{PHONE_NUMBER_ID}/messages"
    assert request["body"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "text",
        "text": {"body": "So sorry! A new one is on its way."},
    }
    assert request["headers"]["authorization"] == "Bearer ***" and request["signature_valid"] is True
    assert sent["provider_message_id"] == request["answer_message_id"]
    assert TOKEN not in json.dumps(await simulator.requests("/graph/"))

    wamid = sent["provider_message_id"]
    assert (await push(stack, simulator, event(statuses=[status(wamid, "sent"), status(wamid, "delivered")])))[0] == 200
    await status_of(db, reply_id, "delivered")
    assert (await push(stack, simulator, event(statuses=[status(wamid, "read")])))[0] == 200
    await status_of(db, reply_id, "read")
    # A late `delivered` never moves it back.
    assert (await push(stack, simulator, event(statuses=[status(wamid, "delivered")])))[0] == 200
    assert (await db.messages.find_one({"_id": reply_id}) or {})["status"] == "read"


async def test_signature_wrong_missing_or_body_altered_is_401_and_metas_own_scheme_passes(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await open_number(stack, simulator)
    body = event(contacts=[contact()], messages=[message("wamid.SIG", "text", {"body": "signed?"})])
    assert (await push(stack, simulator, body, app_secret="another-app")) == (
        401,
        {"error": "bad_signature", "detail": "X-Hub-Signature-256 does not match the body"},
    )
    assert (await push(stack, simulator, body, omit_signature=True))[0] == 401
    assert (await push(stack, simulator, body, alter_after_signing=True))[0] == 401
    original = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), original, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
    async with stack.client("ingress") as ingress:
        forged = original.replace(CUSTOMER.encode(), b"4915550000000")
        assert (await ingress.post("/webhooks/whatsapp", content=forged, headers=headers)).status_code == 401
        assert (await ingress.post("/webhooks/whatsapp", content=original, headers=headers)).status_code == 200
    await stored(db, "wamid.SIG")


async def test_verification_handshake(stack: Stack, simulator: Simulator) -> None:
    await open_number(stack, simulator)
    target = {"ingress_url": stack.url("ingress"), "provider": "whatsapp"}
    async with simulator.client() as control:
        ok = (await control.post("/_sim/meta/verify", json={**target, "verify_token": VERIFY_TOKEN})).json()
        wrong = (await control.post("/_sim/meta/verify", json={**target, "verify_token": "nope"})).json()
    assert ok["verified"] is True and ok["body"] == "1158201444"
    assert wrong["status"] == 403


async def test_several_messages_kept_and_duplicates_stored_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    number = await open_number(stack, simulator)
    second = "4917699999999"
    body = event(
        contacts=[contact(), contact("Bob", second)],
        messages=[
            message("wamid.M1", "text", {"body": "one"}),
            message("wamid.M2", "location", {"latitude": 52.52, "longitude": 13.405, "name": "Shop"}),
            message("wamid.M3", "text", {"body": "from Bob"}, sender=second),
        ],
    )
    status_code, answer = await push(stack, simulator, body)
    assert (status_code, answer["messages"]) == (200, 3)
    assert (await push(stack, simulator, body))[0] == 200  # redelivered: same answer, stored once
    for wamid in ("wamid.M1", "wamid.M2", "wamid.M3"):
        await stored(db, wamid)
    assert await db.messages.count_documents({"channel_id": number.channel_id}) == 3
    location = await db.messages.find_one({"provider_message_id": "wamid.M2"})
    assert location is not None and location["location"] == {"latitude": 52.52, "longitude": 13.405}
    bob = await db.contacts.find_one({"channel_id": number.channel_id, "external_id": second})
    assert bob is not None and bob["name"] == "Bob"


async def test_reply_outside_the_24_hour_window_is_refused_with_the_reason(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    number = await open_number(stack, simulator)
    # The window runs from the time WhatsApp gives the customer's message, not from when we stored it.
    old = message("wamid.OLD", "text", {"body": "still there?"}, ago=25 * 3600)
    assert (await push(stack, simulator, event(contacts=[contact()], messages=[old])))[0] == 200
    incoming = await stored(db, "wamid.OLD")
    # The router refuses free text at once (the dispatcher would refuse it again at send time).
    async with stack.client("router", number.token) as client:
        refused = await client.post(
            f"/api/chats/{incoming['chat_id']}/messages", json={"text": "sorry, we were closed"}
        )
    assert refused.status_code == 422
    assert refused.json()["error"] == "template_required"
    assert "24-hour reply window" in refused.json()["detail"]
    assert refused.json()["detail"].endswith("only a template may be sent")
    assert await db.messages.count_documents({"chat_id": incoming["chat_id"], "direction": "outgoing"}) == 0
    assert await sends(simulator) == []  # refused here, never sent for Meta to reject


async def test_a_failed_status_ends_the_reply_failed_with_whatsapps_reason(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    number = await open_number(stack, simulator)
    assert (
        await push(stack, simulator, event(contacts=[contact()], messages=[message("wamid.Q", "text", {"body": "?"})]))
    )[0] == 200
    incoming = await stored(db, "wamid.Q")
    reply_id = await accept_and_reply(stack, number, incoming["chat_id"], "answer")
    wamid = (await status_of(db, reply_id, "sent"))["provider_message_id"]
    error = {"code": 131026, "title": "Message undeliverable"}
    assert (await push(stack, simulator, event(statuses=[status(wamid, "failed", errors=[error])])))[0] == 200
    failed = await status_of(db, reply_id, "failed")
    assert "131026: Message undeliverable" in failed["failure_reason"]


async def test_malformed_payloads_are_400_and_unknown_numbers_404(stack: Stack, simulator: Simulator) -> None:
    await open_number(stack, simulator)
    assert (await push(stack, simulator, raw='{"object": "whatsapp_business_account", "entry": ['))[0] == 400
    no_media = event(messages=[{"from": CUSTOMER, "id": "wamid.X", "timestamp": "1", "type": "image"}])
    assert (await push(stack, simulator, no_media))[0] == 400
    assert (await push(stack, simulator, {"object": "whatsapp_business_account", "entry": [{"changes": []}]}))[0] == 400
    unknown = event(number="999999", messages=[message("wamid.U", "text", {"body": "hi"})])
    assert (await push(stack, simulator, unknown))[0] == 404


async def test_register_checks_the_access_token(stack: Stack, simulator: Simulator) -> None:
    number = await open_number(stack, simulator)
    async with stack.admin() as admin:
        registered = (await admin.post(f"/api/admin/channels/{number.channel_id}/register")).json()
        assert registered["registration"]["ok"] is True, registered
        assert "Acme Support" in registered["registration"]["detail"]
        revoked = {"access_token": "EAA-revoked", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}
        patched = await admin.patch(f"/api/admin/channels/{number.channel_id}", json={"settings": revoked})
        assert patched.status_code == 200
        refused = (await admin.post(f"/api/admin/channels/{number.channel_id}/register")).json()
    assert refused["registration"]["ok"] is False
    assert "190" in refused["registration"]["detail"] and "EAA-revoked" not in json.dumps(refused)


async def test_throughput_limit_is_retried_and_the_reply_sent_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    number = await open_number(stack, simulator)
    assert (
        await push(stack, simulator, event(contacts=[contact()], messages=[message("wamid.B", "text", {"body": "?"})]))
    )[0] == 200
    incoming = await stored(db, "wamid.B")
    limit = {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429}}
    await simulator.fault(
        path_prefix=f"/graph/v21.0/{PHONE_NUMBER_ID}/messages",
        status=400,
        count=1,
        body=json.dumps(limit),
        content_type="application/json",
    )
    reply_id = await accept_and_reply(stack, number, incoming["chat_id"], "here")
    await status_of(db, reply_id, "sent")
    assert [r["status"] for r in await sends(simulator)] == [400, 200]
