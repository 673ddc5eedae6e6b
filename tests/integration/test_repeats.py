"""Crash safety of "write, then notify": a router update handled again after its write went through (the process
died before notifying) still notifies, and every repeat carries the same event ids, so consumers can drop copies."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest

from omni_contracts import MessageSent, MessageStatusChanged, RouterUpdate
from omni_router.domain.notifications import derived_id
from omni_runtime.broker import Broker
from omni_runtime.database import Database, ensure_indexes
from omni_runtime.settings import Settings
from omni_runtime.topology import operator_queue
from tests.support.routing import router_on

pytestmark = pytest.mark.integration

OPERATOR = "op-1"


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    connected = Broker(settings.amqp_url)
    await connected.connect()
    await connected.declare_queue(operator_queue(OPERATOR))
    yield connected
    await connected.close()


async def apply_update(update: RouterUpdate, db: Database, broker: Broker, settings: Settings) -> None:
    """The update handled by the router's use case, as its `router.updates` consumer hands it over."""
    async with router_on(db, broker, settings) as router:
        await router.updates.apply(update)


async def drain(settings: Settings) -> list[dict[str, object]]:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(operator_queue(OPERATOR).name)
        found = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(json.loads(message.body))
        return found
    finally:
        await connection.close()


async def test_a_receipt_handled_again_after_its_write_notifies_with_the_same_event_id(
    db: Database, broker: Broker, settings: Settings
) -> None:
    await ensure_indexes(db)
    await db.chats.insert_one({"_id": "chat-1", "status": "assigned", "operator_id": OPERATOR, "offered_to": []})
    await db.messages.insert_one(
        {
            "_id": "msg-1",
            "chat_id": "chat-1",
            "channel_id": "ch-1",
            "direction": "outgoing",
            "status": "sent",
            "provider_message_id": "pm-1",
            "created_at": datetime.now(UTC),
        }
    )
    receipt = MessageStatusChanged(channel_id="ch-1", provider_message_id="pm-1", status="delivered")
    # The first run moved the message and died before notifying: the write is there, the notification is not.
    await db.messages.update_one({"_id": "msg-1"}, {"$set": {"status": "delivered"}})
    await apply_update(receipt, db, broker, settings)  # the redelivered receipt
    await apply_update(receipt, db, broker, settings)  # and once more
    sent = MessageSent(message_id="msg-1", chat_id="chat-1", provider_message_id="pm-1")
    await apply_update(sent, db, broker, settings)
    await apply_update(sent, db, broker, settings)

    notes = await drain(settings)
    print("notifications:", [(n["event"], n["data"], n["event_id"]) for n in notes])
    delivered_id = derived_id("msg-1:delivered", "message.status", OPERATOR)
    sent_id = derived_id("msg-1:sent", "message.status", OPERATOR)
    assert [(n["event_id"], n["data"]) for n in notes] == [
        (delivered_id, {"message_id": "msg-1", "status": "delivered"}),
        (delivered_id, {"message_id": "msg-1", "status": "delivered"}),
        (sent_id, {"message_id": "msg-1", "status": "sent"}),
        (sent_id, {"message_id": "msg-1", "status": "sent"}),
    ]
    assert await db.notifications.count_documents({}) == 2  # the streams show each once
    assert (await db.messages.find_one({"_id": "msg-1"}) or {})["status"] == "delivered"


async def test_a_receipt_for_a_message_moved_further_changes_and_repeats_nothing(
    db: Database, broker: Broker, settings: Settings
) -> None:
    await ensure_indexes(db)
    await db.chats.insert_one({"_id": "chat-1", "status": "assigned", "operator_id": OPERATOR, "offered_to": []})
    await db.messages.insert_one(
        {"_id": "msg-1", "chat_id": "chat-1", "channel_id": "ch-1", "direction": "outgoing", "status": "read"}
        | {"provider_message_id": "pm-1"}
    )
    late = MessageStatusChanged(channel_id="ch-1", provider_message_id="pm-1", status="delivered")
    await apply_update(late, db, broker, settings)
    assert await drain(settings) == []
    assert (await db.messages.find_one({"_id": "msg-1"}) or {})["status"] == "read"
