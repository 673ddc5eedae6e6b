"""Indexes an earlier version created and no query needs are dropped at start (each write paid for them)."""

import pytest
from pymongo import ASCENDING, IndexModel

from omni_runtime.database import RETIRED_INDEXES, Database, drop_retired_indexes, ensure_indexes

pytestmark = pytest.mark.integration


async def keys_of(db: Database, collection: str) -> list[dict[str, int]]:
    return [{str(k): int(v) for k, v in dict(i["key"]).items()} async for i in await db[collection].list_indexes()]


async def test_the_retired_message_indexes_are_dropped_at_start_and_the_others_kept(db: Database) -> None:
    retired = [IndexModel([(field, ASCENDING) for field in key]) for key in RETIRED_INDEXES["messages"]]
    await db.messages.create_indexes(retired)
    await db.messages.insert_one({"_id": "m1", "chat_id": "c1", "status": "queued", "published": False})
    before = await keys_of(db, "messages")
    assert all(key in before for key in RETIRED_INDEXES["messages"])

    await ensure_indexes(db)

    kept = await keys_of(db, "messages")
    assert not [key for key in RETIRED_INDEXES["messages"] if key in kept]
    assert {"chat_id": 1} in kept and {"status": 1} in kept and {"dedupe_key": 1} in kept
    assert await drop_retired_indexes(db) == []  # once dropped, a second start finds nothing to do
    assert await db.messages.find_one({"chat_id": "c1", "status": "queued"}) is not None
