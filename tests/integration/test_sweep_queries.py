"""The router's sweeps run on a timer whatever the traffic, and on nx-27017 each of their commands holds the
database's one lock: a sweep query that reads every chat or message delays every other command by as long as the
history is big (the p99 at 1,000,000 stored messages, issue 12). Each sweep query is taken as the adapter sends it
(a command listener) and explained by the server: it must be answered from an index, on MongoDB and on the
stand-in."""

import time
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from omni_router.adapters.clock import SystemClock
from omni_router.adapters.mongo_chats import MongoChats
from omni_router.adapters.mongo_messages import MongoMessages
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.settings import Settings
from tests.support.commands import Writes, from_an_index, plan
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def watched(db: Database, settings: Settings) -> AsyncIterator[tuple[Database, Writes]]:
    """The test's database through a second client whose reads are recorded, with the services' indexes."""
    await ensure_indexes(db)
    sent = Writes()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True, event_listeners=[sent])
    yield client[db.name], sent
    await client.close()


async def seed(db: Database) -> None:
    """Enough chats and messages that a scan is a choice the server could make, a few of them due."""
    now = time.time()
    chats: list[Document] = [{"_id": f"closed{n:04d}", "status": "closed", "queue_id": "q1"} for n in range(300)]
    chats += [
        {"_id": "waiting1", "status": "new", "waiting": True, "waiting_in": "q1"},
        {"_id": "waiting2", "status": "new", "waiting": True, "waiting_in": "q2"},
        {"_id": "expired", "status": "new", "offer_expires_at": now - 60},
        {"_id": "due", "status": "assigned", "due_at": now - 60},
        {"_id": "stale", "status": "assigned", "outbox_at": now - 60, "unpublished": {}},
        {"_id": "asking", "status": "closed", "csat_ask_at": now - 60},
    ]
    await db.chats.insert_many(chats)
    messages: list[Document] = [{"_id": f"m{n:04d}", "chat_id": f"closed{n % 300:04d}"} for n in range(600)]
    messages.append({"_id": "reply", "chat_id": "due", "direction": "outgoing", "publish_due": now - 60})
    await db.messages.insert_many(messages)


async def test_every_sweep_query_is_answered_from_an_index(
    watched: tuple[Database, Writes], db: Database, infra: Infra
) -> None:
    database, sent = watched
    await seed(db)
    chats, messages, now = MongoChats(database, SystemClock()), MongoMessages(database), time.time()
    assert sorted(await chats.queues_waiting()) == ["q1", "q2"]
    assert [c.id for c in await chats.offers_expired(now, 200)] == ["expired"]
    assert [c.id for c in await chats.due(now, 200)] == ["due"]
    assert [o.chat_id for o in await chats.stale_outboxes(now, 500)] == ["stale"]
    assert [c.id for c in await chats.questions_due(now, 200)] == ["asking"]
    assert [m.id for m in await messages.publish_due(now)] == ["reply"]
    assert [collection for collection, _ in sent.reads] == ["chats"] * 5 + ["messages"]
    for collection, query in sent.reads:
        assert from_an_index(await plan(db, collection, query), collection, infra.kind), (collection, query)
