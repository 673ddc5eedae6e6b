"""Operator replies: delivered signed to the channel, retried through failures exactly once, parked when hopeless."""

from typing import Any

import pytest

from omni_providers.signatures import verify_hmac_sha256
from omni_runtime.consumer import QuickRetries
from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import OperatorInbox, Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e


async def _open_chat(stack: Stack, db: Database, simulator: Simulator) -> tuple[Desk, str, str]:
    """A desk whose channel delivers to the simulator, one customer chat, and the operator who holds it."""
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    raw, headers = signed(customer_message("in-1", sender="cust-9"), desk.secret)
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
    message = await eventually(lambda: db.messages.find_one({"provider_message_id": "in-1", "routed": True}))
    _operator_id, token = next(iter(desk.operators.items()))
    async with stack.client("router", token) as client:
        assert (await client.post(f"/api/chats/{message['chat_id']}/accept")).status_code == 200
    return desk, message["chat_id"], token


async def _reply(stack: Stack, token: str, chat_id: str, text: str) -> str:
    async with stack.client("router", token) as client:
        answer = await client.post(f"/api/chats/{chat_id}/messages", json={"text": text})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    reply_id: str = answer.json()["id"]
    return reply_id


async def _final(db: Database, message_id: str, statuses: tuple[str, ...] = ("sent", "failed")) -> Document:
    async def settled() -> Document | None:
        doc = await db.messages.find_one({"_id": message_id})
        return doc if doc and doc["status"] in statuses else None

    return await eventually(settled, timeout=30)


def _delivered(requests: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    return [r for r in requests if r["message_id"] == message_id and r["status"] == 200]


async def test_reply_reaches_the_channel_signed_and_ends_sent(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    desk, chat_id, token = await _open_chat(stack, db, simulator)
    reply_id = await _reply(stack, token, chat_id, "Hi Ann, how can I help?")
    assert (await _final(db, reply_id))["status"] == "sent"

    [request] = await simulator.requests()
    body = request["body"]
    assert body == {
        "message_id": reply_id,
        "chat_id": chat_id,
        "recipient": "cust-9",
        "sender": "bot-1",
        "text": "Hi Ann, how can I help?",
        "attachments": [],
    }
    assert {k.lower(): v for k, v in request["headers"].items()}["idempotency-key"] == reply_id
    signature = {k.lower(): v for k, v in request["headers"].items()}["x-omni-signature"]
    assert verify_hmac_sha256(desk.secret, request["raw"].encode(), signature)
    assert not verify_hmac_sha256("another-secret", request["raw"].encode(), signature)

    operator_id = next(iter(desk.operators))
    async with OperatorInbox(settings.amqp_url) as inbox:

        async def sent_note() -> list[dict[str, Any]]:
            return [n for n in await inbox.drain(operator_id, quiet=0.2) if n["event"] == "message.status"]

        notes = await eventually(sent_note)
    assert notes[0]["data"] == {"message_id": reply_id, "status": "sent"}
    async with stack.client("router", token) as client:
        conversation = (await client.get(f"/api/chats/{chat_id}/messages")).json()["items"]
    assert [(m["direction"], m["status"]) for m in conversation] == [("incoming", "received"), ("outgoing", "sent")]


async def test_reply_retried_through_failures_is_delivered_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    _desk, chat_id, token = await _open_chat(stack, db, simulator)
    await simulator.fault(path_prefix="/thirdparty/", status=500, count=2)
    await simulator.fault(path_prefix="/thirdparty/", status=429, count=1, retry_after=0.3)
    reply_id = await _reply(stack, token, chat_id, "after a few tries")
    assert (await _final(db, reply_id))["status"] == "sent"

    requests = await simulator.requests()
    assert [r["status"] for r in requests] == [500, 500, 429, 200]
    assert len(_delivered(requests, reply_id)) == 1


async def test_reply_failing_forever_is_parked_failed_and_can_be_replayed(
    stack: Stack, db: Database, simulator: Simulator, settings: Settings
) -> None:
    _desk, chat_id, token = await _open_chat(stack, db, simulator)
    await simulator.fault(path_prefix="/thirdparty/", status=503, count=None)
    reply_id = await _reply(stack, token, chat_id, "into the void")
    failed = await _final(db, reply_id)
    assert failed["status"] == "failed"
    assert "gave up after 4 attempts" in failed["failure_reason"] and "503" in failed["failure_reason"]
    # Every attempt tries three times within a second first (a 503 may be a blip), then waits.
    assert len(await simulator.requests()) == settings.max_attempts * QuickRetries().attempts

    async with stack.admin() as admin:
        parked = (await admin.get("/api/admin/parked")).json()["items"]
        assert [(p["queue"], p["body"]["message_id"]) for p in parked] == [("dispatcher.outgoing", reply_id)]
        assert "503" in parked[0]["cause"] and parked[0]["attempts"] == 4
        # listing does not consume: it is still there
        assert len((await admin.get("/api/admin/parked")).json()["items"]) == 1

        async with simulator.client() as control:
            await control.delete("/_sim/faults")
        replay = await admin.post("/api/admin/parked/replay", json={"ids": [parked[0]["id"]]})
        assert replay.json() == {"replayed": 1}
    delivered = await _final(db, reply_id, ("sent",))
    assert "failure_reason" not in delivered
    assert len(_delivered(await simulator.requests(), reply_id)) == 1
    async with stack.admin() as admin:
        assert (await admin.get("/api/admin/parked")).json()["items"] == []


async def test_refused_reply_is_failed_at_once(stack: Stack, db: Database, simulator: Simulator) -> None:
    _desk, chat_id, token = await _open_chat(stack, db, simulator)
    await simulator.fault(path_prefix="/thirdparty/", status=400, count=None, body="recipient unknown")
    reply_id = await _reply(stack, token, chat_id, "nobody home")
    failed = await _final(db, reply_id)
    assert failed["status"] == "failed" and "400" in failed["failure_reason"]
    assert len(await simulator.requests()) == 1
