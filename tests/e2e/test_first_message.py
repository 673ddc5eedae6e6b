"""A signed third-party webhook becomes exactly one contact, chat and message, and one offer per online operator."""

import asyncio

import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import OperatorInbox, Stack, eventually, signed
from tests.support.traffic import Customers

pytestmark = pytest.mark.e2e


async def test_webhook_stored_once_and_offered_to_each_online_operator(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=3, online=2)
    online, offline = list(desk.operators)[:2], list(desk.operators)[2]
    raw, headers = signed(customer_message("m-1"), desk.secret)

    async with stack.client("ingress") as ingress:
        first = await ingress.post(f"/webhooks/{desk.provider}/receive", content=raw, headers=headers)
        assert first.status_code == 200, first.text
        stored = await eventually(lambda: db.messages.find_one({"provider_message_id": "m-1", "routed": True}))
        again = await ingress.post(f"/webhooks/{desk.provider}/receive", content=raw, headers=headers)
        assert again.status_code == 200

    async with OperatorInbox(settings.amqp_url) as inbox:
        notes = {op: await inbox.drain(op, quiet=1.0) for op in desk.operators}
    assert await db.contacts.count_documents({}) == 1
    assert await db.chats.count_documents({}) == 1
    assert await db.messages.count_documents({}) == 1
    contact = await db.contacts.find_one({})
    assert contact is not None and contact["name"] == "Ann Customer"
    assert stored["text"] == "hello"
    for op in online:
        assert [n["event"] for n in notes[op]] == ["chat.offered"], notes[op]
        assert notes[op][0]["chat_id"] == stored["chat_id"]
        assert notes[op][0]["operator_id"] == op
    assert notes[offline] == []

    token = desk.operators[online[0]]
    async with stack.client("router", token) as client:
        chats = (await client.get("/api/chats")).json()["items"]
        assert [c["id"] for c in chats] == [stored["chat_id"]]
        assert chats[0]["contact"]["name"] == "Ann Customer" and chats[0]["unread_count"] == 1
        conversation = (await client.get(f"/api/chats/{stored['chat_id']}/messages")).json()["items"]
        assert [(m["direction"], m["text"]) for m in conversation] == [("incoming", "hello")]
    async with stack.client("router", desk.operators[offline]) as client:
        assert (await client.get("/api/chats")).json()["items"] == []
        assert (await client.get(f"/api/chats/{stored['chat_id']}")).status_code == 404


async def test_every_message_of_a_new_chat_reaches_its_operator_even_when_they_race(
    stack: Stack, db: Database, settings: Settings
) -> None:
    """Two messages of one brand-new chat arrive together: one is carried by chat.offered, the other by message.new."""
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    [operator] = desk.operators
    bodies = [customer_message(f"m-{s}-{n}", text=f"{s}/{n}", sender=f"cust-{s}") for s in range(10) for n in range(2)]
    customers = Customers(stack.url("ingress"), provider=desk.provider, secret=desk.secret)
    try:
        await asyncio.gather(*(customers.write(b["message_id"], b["sender"], b["text"]) for b in bodies))
    finally:
        await customers.close()
    assert customers.answers[200] == len(bodies) and set(customers.answers) <= {200, 0}, customers.report()

    async def all_routed() -> bool:
        return await db.messages.count_documents({"routed": True}) == len(bodies)

    await eventually(all_routed, timeout=30)
    async with OperatorInbox(settings.amqp_url) as inbox:
        notes = await inbox.drain(operator, quiet=1.0)
    carried = {n["data"]["message"]["text"] for n in notes if "message" in n.get("data", {})}
    assert carried == {b["text"] for b in bodies}
    assert sorted(n["event"] for n in notes if n["event"] == "chat.offered") == ["chat.offered"] * 10
