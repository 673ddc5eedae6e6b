"""A supervisor's queue settings through the running services and the provider simulator: the greeting, the
out-of-hours answer (the chat waits), the CSAT question after closing and the customer's rating, and the reports."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omni_runtime.database import Database
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e


async def _write(stack: Stack, desk: Desk, message_id: str, text: str, sender: str) -> None:
    now = int(datetime.now(UTC).timestamp())  # chats date from their first message: in the reports' default period
    raw, headers = signed(customer_message(message_id, text=text, sender=sender, timestamp=now), desk.secret)
    async with stack.client("ingress") as ingress:
        answer = await ingress.post(f"/webhooks/{desk.provider}/receive", content=raw, headers=headers)
        assert answer.status_code == 200, answer.text


async def _sent(simulator: Simulator, recipient: str) -> list[str]:
    """The texts the simulator's third-party receiver got for this customer, in order."""
    bodies = [r["body"] for r in await simulator.requests() if r.get("status") == 200]
    return [b["text"] for b in bodies if isinstance(b, dict) and b.get("recipient") == recipient]


async def test_greeting_out_of_hours_and_a_rating_through_the_simulator(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    [(operator_id, token)] = desk.operators.items()
    today = datetime.now(UTC).strftime("%a").lower()[:3]
    always = {"timezone": "UTC", "weekly": {today: [["00:00", "24:00"]]}}
    async with stack.admin() as admin:
        refused = await admin.patch(
            f"/api/admin/queues/{desk.queue_id}", json={"business_hours": {"timezone": "Mars/Olympus"}}
        )
        assert refused.status_code == 400 and "IANA" in refused.json()["detail"]
        changed = await admin.patch(
            f"/api/admin/queues/{desk.queue_id}",
            json={
                "business_hours": always,
                "greeting_text": "Hi! An agent will be with you shortly.",
                "out_of_hours_text": "We are closed; we answer when we open.",
                "csat": {"enabled": True, "question": "How did we do? 1-5"},
            },
        )
        assert changed.status_code == 200, changed.text
        assert (
            changed.json()["business_hours"] == {**always, "holidays": []} and changed.json()["csat"]["enabled"] is True
        )

    # Inside hours: the greeting once, however many messages and redeliveries.
    await _write(stack, desk, "in-1", "hello", "cust-1")
    await _write(stack, desk, "in-1", "hello", "cust-1")
    await _write(stack, desk, "in-2", "my order?", "cust-1")
    await eventually(lambda: db.messages.find_one({"provider_message_id": "in-2", "routed": True}))
    assert await eventually(lambda: _sent(simulator, "cust-1")) == ["Hi! An agent will be with you shortly."]
    chat = await db.chats.find_one({"contact_id": {"$exists": True}, "status": "new"})
    assert chat is not None

    # The operator answers and closes: the customer gets the question, and their "5" rates the chat.
    async with stack.client("router", token) as client:
        assert (await client.post(f"/api/chats/{chat['_id']}/messages", json={"text": "On its way"})).status_code == 202
        assert (await client.post(f"/api/chats/{chat['_id']}/close")).status_code == 200

    async def asked() -> bool:
        return (await _sent(simulator, "cust-1"))[-1:] == ["How did we do? 1-5"]

    await eventually(asked)
    await _write(stack, desk, "in-3", "5 quick and kind", "cust-1")

    async def rated() -> dict[str, Any] | None:
        async with stack.client("router", token) as client:
            found = (await client.get(f"/api/chats/{chat['_id']}")).json()
            return found if found.get("rating") else None

    shown = await eventually(rated)
    assert shown["status"] == "closed" and shown["rating"]["score"] == 5
    assert shown["rating"]["comment"] == "quick and kind" and shown["first_response_at"] is not None
    assert await db.chats.count_documents({}) == 1  # the rating opened no chat

    # Out of hours (today is a holiday now): the answer once, and the chat waits, offered to nobody.
    days = [(datetime.now(UTC) + timedelta(days=n)).date().isoformat() for n in (-1, 0, 1)]  # midnight-proof
    closed = {**always, "holidays": days}
    async with stack.admin() as admin:
        patched = await admin.patch(f"/api/admin/queues/{desk.queue_id}", json={"business_hours": closed})
        assert patched.status_code == 200
    await _write(stack, desk, "late-1", "anyone?", "cust-2")
    waiting = await eventually(lambda: db.chats.find_one({"waiting_in": desk.queue_id}))
    assert await eventually(lambda: _sent(simulator, "cust-2")) == ["We are closed; we answer when we open."]
    assert waiting["offered_to"] == [] and waiting["not_before"] > datetime.now(UTC).timestamp()
    async with stack.client("router", token) as client:
        assert (await client.get(f"/api/chats/{waiting['_id']}")).status_code == 404  # never offered to them
    assert operator_id not in waiting["offered_ever"]

    # The reports: the rated chat and the waiting one, by aggregation on the running router; the CSV streamed.
    async with stack.admin() as admin:
        summary = (await admin.get("/api/admin/reports/summary", params={"queue_id": desk.queue_id})).json()
        assert (summary["chats_opened"], summary["chats_closed"], summary["messages_in"]) == (2, 1, 3)
        assert summary["messages_out"] == 1 and summary["csat"] == {"responses": 1, "average": 5.0}
        assert summary["first_response_seconds"]["p50"] is not None and len(summary["by_day"]) >= 30
        assert (await admin.get("/api/admin/reports/summary", params={"from": "soon"})).status_code == 400
        csv = await admin.get("/api/admin/reports/chats.csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert "attachment" in csv.headers["content-disposition"]
        lines = csv.text.strip().split("\r\n")
        assert lines[0].startswith("chat_id,channel,queue,contact") and len(lines) == 3
        assert lines[1].split(",")[11] == "5"
    async with stack.client("router", token) as client:
        assert (await client.get("/api/admin/reports/summary")).status_code == 403
