"""Writes to `messages` that the operator's reading and the messengers' receipts make, on a real server: each one
addresses the messages by `_id` after finding them through an index (the nx-27017 stand-in reads every message for
an update filtered by any other field: a second per write at 1,000,000 messages)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from omni_router.adapters.mongo_messages import MongoMessages
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.settings import Settings
from tests.support.commands import Writes, from_an_index, plan
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.fixture
async def watched(db: Database, settings: Settings) -> AsyncIterator[tuple[MongoMessages, Writes]]:
    await ensure_indexes(db)
    writes = Writes()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True, event_listeners=[writes])
    yield MongoMessages(client[db.name]), writes
    await client.close()


def incoming(n: int, chat_id: str, read: bool) -> Document:
    return {"_id": f"in{n:04d}", "chat_id": chat_id, "direction": "incoming", "read": read, "created_at": NOW}


def reply(message_id: str, chat_id: str, provider_id: str, status: str) -> Document:
    return {
        "_id": message_id,
        "chat_id": chat_id,
        "channel_id": "ch1",
        "direction": "outgoing",
        "provider_message_id": provider_id,
        "status": status,
        "created_at": NOW,
    }


async def test_marking_a_chat_read_updates_its_unread_messages_by_id(
    watched: tuple[MongoMessages, Writes], db: Database
) -> None:
    messages, writes = watched
    await db.messages.insert_many(
        [incoming(n, "c1", read=n == 0) for n in range(4)] + [incoming(n, "c2", read=False) for n in range(4, 200)]
    )
    assert await messages.mark_read("c1") == 3
    assert await messages.mark_read("c1") == 0
    assert await db.messages.count_documents({"chat_id": "c2", "read": False}) == 196
    assert await db.messages.count_documents({"chat_id": "c1", "read": True}) == 4
    assert writes.on("messages") and all(sorted(q) == ["_id", "read"] for q in writes.on("messages"))


async def test_a_receipt_moves_the_reply_found_by_the_provider_s_id_by_its_id(
    watched: tuple[MongoMessages, Writes], db: Database
) -> None:
    messages, writes = watched
    await db.messages.insert_many(
        [reply("r1", "c1", "p-1", "sent"), reply("r2", "c1", "p-2", "sent")]
        + [incoming(n, "c1", read=True) for n in range(200)]
    )
    moved = await messages.move_status("ch1", provider_message_id="p-2", from_statuses=["sent"], to="delivered")
    assert moved is not None and moved.id == "r2" and moved.status == "sent"  # the document as it was
    again = await messages.move_status("ch1", provider_message_id="p-2", from_statuses=["sent"], to="delivered")
    assert again is None  # moved already
    unknown = await messages.move_status("ch1", provider_message_id="p-9", from_statuses=["sent"], to="delivered")
    assert unknown is None
    stored = {doc["_id"]: doc["status"] async for doc in db.messages.find({"direction": "outgoing"})}
    assert stored == {"r1": "sent", "r2": "delivered"}
    assert writes.on("messages") and all("_id" in q and "provider_message_id" not in q for q in writes.on("messages"))


async def test_a_watermark_finds_the_recipient_s_replies_through_an_index_and_moves_them_by_id(
    watched: tuple[MongoMessages, Writes], db: Database, infra: Infra
) -> None:
    """A Messenger watermark (read or delivered up to a time, for one customer): its replies are found through the
    `recipient` index, on MongoDB and on the stand-in (which read every message for it before), then moved by `_id`."""
    messages, writes = watched
    later = NOW + timedelta(minutes=1)
    await db.messages.insert_many(
        [
            {**reply("r1", "c1", "p-1", "sent"), "recipient": "psid-1"},
            {**reply("r2", "c1", "p-2", "delivered"), "recipient": "psid-1"},
            {**reply("r3", "c1", "p-3", "read"), "recipient": "psid-1"},
            {**reply("r4", "c1", "p-4", "sent"), "recipient": "psid-1", "created_at": later},  # after the watermark
            {**reply("r5", "c2", "p-5", "sent"), "recipient": "psid-2"},
        ]
        + [{**reply(f"o{n:04d}", "c3", f"p-o{n}", "sent"), "recipient": f"psid-{n + 3}"} for n in range(200)]
        + [incoming(n, "c1", read=True) for n in range(200)]
    )
    found = await messages.sent_until("ch1", "psid-1", ["sent", "delivered"], NOW)
    assert sorted(found) == ["r1", "r2"]
    for message_id in found:
        moved = await messages.move_status("ch1", message_id=message_id, from_statuses=["sent", "delivered"], to="read")
        assert moved is not None
    assert await messages.sent_until("ch1", "psid-1", ["sent", "delivered"], NOW) == []
    assert await messages.sent_until("ch1", None, ["sent", "delivered"], NOW) == []  # no recipient: nothing to move
    stored = {
        doc["_id"]: doc["status"]
        async for doc in db.messages.find({"chat_id": {"$in": ["c1", "c2"]}, "direction": "outgoing"})
    }
    assert {k: v for k, v in stored.items() if k.startswith("r")} == {
        "r1": "read",
        "r2": "read",
        "r3": "read",
        "r4": "sent",
        "r5": "sent",
    }
    assert writes.on("messages") and all("_id" in q for q in writes.on("messages"))
    reads = writes.read_on("messages")
    assert len(reads) == 2  # the third watermark, without a recipient, read nothing
    for query in reads:
        assert from_an_index(await plan(db, "messages", query), "messages", infra.kind), query
