"""WhatsApp through Twilio end to end: signed form webhooks in, media into GridFS, replies out as Messages.json."""

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from tests.support.seed import seed_desk
from tests.support.stack import Simulator, Stack, eventually

pytestmark = pytest.mark.e2e

ACCOUNT = "AC" + "1" * 32
TOKEN = "e2e-twilio-auth-token"
NUMBER = "+14155238886"
CUSTOMER = "+4915112345678"
PHOTO = b"\xff\xd8\xff\xe0" + b"JPEG bytes " * 200


@dataclass
class WhatsApp:
    channel_id: str
    operator_token: str


def sid(n: int, prefix: str = "SM") -> str:
    return f"{prefix}{n:032x}"


def customer_form(message_sid: str, body: str = "Hello", **extra: str) -> list[tuple[str, str]]:
    """An incoming WhatsApp message as Twilio posts it."""
    fields = {
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "ProfileName": "Ann Customer",
        "MessageType": "text",
        "SmsSid": message_sid,
        "WaId": CUSTOMER[1:],
        "SmsStatus": "received",
        "Body": body,
        "To": f"whatsapp:{NUMBER}",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT,
        "From": f"whatsapp:{CUSTOMER}",
        "ApiVersion": "2010-04-01",
        **extra,
    }
    return list(fields.items())


async def whatsapp_desk(stack: Stack, simulator: Simulator, *services: str) -> WhatsApp:
    """The services, a queue with one online operator, and a Twilio channel whose account the simulator knows."""
    await stack.start("ingress", "router", *services)
    desk = await seed_desk(stack, operators=1)
    async with stack.admin() as admin:
        created = await admin.post(
            "/api/admin/channels",
            json={
                "name": "WhatsApp",
                "provider": "twilio",
                "source": NUMBER,
                "queue_id": desk.queue_id,
                "settings": {"account_sid": ACCOUNT, "auth_token": TOKEN},
            },
        )
    assert created.status_code == 201, created.text
    assert TOKEN not in created.text
    async with simulator.client() as control:
        answer = await control.put(f"/_sim/twilio/accounts/{ACCOUNT}", json={"auth_token": TOKEN})
        assert answer.status_code == 200 and TOKEN not in answer.text
    return WhatsApp(created.json()["id"], next(iter(desk.operators.values())))


async def push(
    stack: Stack, simulator: Simulator, desk: WhatsApp, fields: list[tuple[str, str]], **options: Any
) -> Any:
    """The simulator posts a webhook to ingress, signed as Twilio signs it; ingress's answer comes back."""
    body = {
        "ingress_url": stack.url("ingress"),
        "channel_id": desk.channel_id,
        "account_sid": ACCOUNT,
        "fields": fields,
    }
    async with simulator.client() as control:
        answer = await control.post("/_sim/twilio/push", json=body | options)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def stored(db: Database, message_sid: str) -> Document:
    return await eventually(lambda: db.messages.find_one({"provider_message_id": message_sid, "routed": True}))


async def status_of(db: Database, message_id: str, wanted: str) -> Document:
    async def reached() -> Document | None:
        doc = await db.messages.find_one({"_id": message_id})
        return doc if doc and doc["status"] == wanted else None

    return await eventually(reached, timeout=30)


async def reply(stack: Stack, desk: WhatsApp, chat_id: str, text: str) -> str:
    async with stack.client("router", desk.operator_token) as client:
        answer = await client.post(f"/api/chats/{chat_id}/messages", json={"text": text})
    assert answer.status_code == 202, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def test_messages_media_profile_reply_and_receipts(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    desk = await whatsapp_desk(stack, simulator, "dispatcher", "profiles", "attachments")

    answer = await push(stack, simulator, desk, customer_form(sid(1), "Hi, my order is late"))
    assert answer["status"] == 200
    assert answer["content_type"].startswith("text/xml") and "<Response/>" in answer["body"]
    text = await stored(db, sid(1))
    assert (text["type"], text["text"], text["channel_id"]) == ("text", "Hi, my order is late", desk.channel_id)

    async def named() -> Document | None:
        return await db.contacts.find_one({"external_id": CUSTOMER, "profile_status": "resolved"})

    contact = await eventually(named)
    assert contact["name"] == "Ann Customer"

    async with simulator.client() as control:
        uploaded = await control.post(
            "/_sim/twilio/media",
            params={"account_sid": ACCOUNT, "message_sid": sid(2), "not_found_first": "1"},
            content=PHOTO,
            headers={"Content-Type": "image/jpeg"},
        )
    media_url = uploaded.json()["url"]
    media_form = customer_form(
        sid(2), "the parcel label", NumMedia="1", MediaUrl0=media_url, MediaContentType0="image/jpeg"
    )
    assert (await push(stack, simulator, desk, media_form))["status"] == 200
    media = await stored(db, sid(2))
    assert (media["type"], media["text"], media["chat_id"]) == ("image", "the parcel label", text["chat_id"])

    async def attachment_done() -> Document | None:
        doc = await db.messages.find_one({"_id": media["_id"]})
        return doc if doc and doc["attachments"][0]["status"] != "pending" else None

    attachment = (await eventually(attachment_done, timeout=30))["attachments"][0]
    assert attachment["status"] == "stored", attachment.get("failure_reason")
    async with stack.client("router", desk.operator_token) as client:
        assert (await client.post(f"/api/chats/{text['chat_id']}/accept")).status_code == 200
        file = await client.get(f"/api/files/{attachment['file_id']}")
    assert file.status_code == 200 and file.content == PHOTO
    assert file.headers["content-type"].startswith("image/jpeg")
    fetches = await simulator.requests(media_url.split(simulator.url, 1)[1])
    assert [f["status"] for f in fetches] == [404, 200]  # Twilio's early 404, then the file
    assert all(f["headers"]["authorization"] == f"Basic {ACCOUNT}:***" for f in fetches)

    reply_id = await reply(stack, desk, text["chat_id"], "Sorry Ann, it ships today")
    sent = await status_of(db, reply_id, "sent")
    [request] = await simulator.requests(f"/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    assert parse_qsl(request["raw"]) == [
        ("To", f"whatsapp:{CUSTOMER}"),
        ("From", f"whatsapp:{NUMBER}"),
        ("Body", "Sorry Ann, it ships today"),
        ("StatusCallback", f"{settings.public_base_url}/webhooks/twilio/{desk.channel_id}"),
    ]
    assert request["headers"]["authorization"] == f"Basic {ACCOUNT}:***"
    assert sent["provider_message_id"] == request["answer_message_id"]

    async with simulator.client() as control:
        for status in ("delivered", "read"):
            callback = await control.post(
                f"/_sim/twilio/messages/{sent['provider_message_id']}/status", json={"status": status}
            )
            assert callback.json()["status"] == 200, callback.text
            await status_of(db, reply_id, status)

    # Accepted by Twilio, then given up on: the status callback fails the message with Twilio's error.
    second_id = await reply(stack, desk, text["chat_id"], "one more thing")
    second = await status_of(db, second_id, "sent")
    async with simulator.client() as control:
        body = {"status": "undelivered", "error_code": 63016}
        await control.post(f"/_sim/twilio/messages/{second['provider_message_id']}/status", json=body)
    failed = await status_of(db, second_id, "failed")
    assert "24-hour reply window" in failed["failure_reason"] and "63016" in failed["failure_reason"]


async def test_signature_wrong_missing_or_altered_is_401_and_the_independent_one_passes(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    desk = await whatsapp_desk(stack, simulator)
    form = customer_form(sid(10), "should not arrive")
    assert (await push(stack, simulator, desk, form, signature="bm90IHRoZSBzaWduYXR1cmU="))["status"] == 401
    assert (await push(stack, simulator, desk, form, omit_signature=True))["status"] == 401
    assert (await push(stack, simulator, desk, form, altered={"Body": "changed in flight"}))["status"] == 401
    assert (await push(stack, simulator, desk, form, altered={"NumMedia": "1"}))["status"] == 401
    assert (await push(stack, simulator, desk, form, as_json=True, altered={"Body": "changed"}))["status"] == 401
    assert (await push(stack, simulator, desk, form, auth_token="another-accounts-token"))["status"] == 401

    # The documented algorithm computed here, independently of our helper, over the URL ingress is reached at.
    fields = customer_form(sid(11), "signed by hand")
    url = f"{settings.public_base_url}/webhooks/twilio/{desk.channel_id}"
    data = url + "".join(name + value for name, value in sorted(fields))
    signature = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    async with httpx.AsyncClient(timeout=15) as client:
        answer = await client.post(
            url,
            content=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        )
        assert answer.status_code == 200, answer.text
        unknown = await client.post(
            f"{settings.public_base_url}/webhooks/twilio/no-such-channel",
            content=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        )
        assert unknown.status_code == 404
    assert (await stored(db, sid(11)))["text"] == "signed by hand"
    assert (await push(stack, simulator, desk, customer_form(sid(12), "as JSON"), as_json=True))["status"] == 200
    await stored(db, sid(12))
    assert await db.messages.count_documents({"provider_message_id": sid(10)}) == 0


async def test_duplicate_message_sid_is_stored_once(stack: Stack, db: Database, simulator: Simulator) -> None:
    desk = await whatsapp_desk(stack, simulator)
    for _ in range(3):
        assert (await push(stack, simulator, desk, customer_form(sid(20), "once")))["status"] == 200
    assert (await push(stack, simulator, desk, customer_form(sid(21), "after")))["status"] == 200
    await stored(db, sid(21))  # the router has handled everything pushed before it
    assert await db.messages.count_documents({"provider_message_id": sid(20)}) == 1


async def test_reply_outside_the_24_hour_window_fails_with_the_reason(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    desk = await whatsapp_desk(stack, simulator, "dispatcher")
    assert (await push(stack, simulator, desk, customer_form(sid(30))))["status"] == 200
    message = await stored(db, sid(30))
    async with simulator.client() as control:
        body = {"account_sid": ACCOUNT, "customer": CUSTOMER, "open": False}
        assert (await control.post("/_sim/twilio/windows", json=body)).status_code == 200
    reply_id = await reply(stack, desk, message["chat_id"], "a day too late")
    failed = await status_of(db, reply_id, "failed")
    assert "24-hour reply window" in failed["failure_reason"] and "63016" in failed["failure_reason"]
    requests = await simulator.requests("/twilio/")
    assert [r["status"] for r in requests] == [400]  # refused once, not retried


async def test_malformed_webhooks_are_400_and_nothing_is_stored(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    desk = await whatsapp_desk(stack, simulator)
    no_sid = [(n, v) for n, v in customer_form(sid(40)) if n not in ("MessageSid", "SmsMessageSid", "SmsSid")]
    bad_media = customer_form(sid(41), NumMedia="lots")
    other_number = customer_form(sid(42), To="whatsapp:+10000000000")
    for fields in (no_sid, bad_media, other_number):
        answer = await push(stack, simulator, desk, fields)
        assert answer["status"] == 400, answer
    async with stack.client("ingress") as ingress:
        garbage = await ingress.post(
            f"/webhooks/twilio/{desk.channel_id}",
            content=b"\xff\xfe\x00",
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
        )
    assert garbage.status_code == 400 and garbage.json()["error"] == "malformed_form"
    assert (await push(stack, simulator, desk, customer_form(sid(43))))["status"] == 200
    await stored(db, sid(43))
    assert await db.messages.count_documents({}) == 1


async def test_register_checks_the_credentials(stack: Stack, simulator: Simulator) -> None:
    desk = await whatsapp_desk(stack, simulator)
    async with stack.admin() as admin:
        registered = await admin.post(f"/api/admin/channels/{desk.channel_id}/register")
        assert registered.status_code == 200, registered.text
        assert registered.json()["registration"]["ok"] is True
        assert TOKEN not in registered.text
        patched = await admin.patch(
            f"/api/admin/channels/{desk.channel_id}", json={"settings": {"account_sid": ACCOUNT, "auth_token": "old"}}
        )
        assert patched.status_code == 200, patched.text
        refused = (await admin.post(f"/api/admin/channels/{desk.channel_id}/register")).json()
    assert refused["registration"]["ok"] is False and "refused" in refused["registration"]["detail"]
