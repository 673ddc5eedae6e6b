"""Which earlier reply holds a reply back: an outgoing one of the same chat, still queued, not too old."""

import time

import pytest

from omni_dispatcher.sequencing import Sequencer
from omni_runtime.database import Database, ensure_indexes
from omni_runtime.ids import lowest_id_at, new_id

pytestmark = pytest.mark.integration


async def test_only_an_earlier_queued_reply_of_the_same_chat_goes_first(db: Database) -> None:
    await ensure_indexes(db)
    old = lowest_id_at(time.time() - 3600)  # older than the whole retry schedule: stuck, holds nothing
    first, second, third = new_id(), new_id(), new_id()
    await db.messages.insert_many(
        [
            {"_id": old, "chat_id": "c", "direction": "outgoing", "status": "queued"},
            {"_id": first, "chat_id": "c", "direction": "outgoing", "status": "queued"},
            {"_id": second, "chat_id": "c", "direction": "outgoing", "status": "queued"},
            {"_id": third, "chat_id": "c", "direction": "outgoing", "status": "queued"},
            {"_id": new_id(), "chat_id": "other", "direction": "outgoing", "status": "queued"},
        ]
    )
    sequencer = Sequencer(db, stale_after=60.0)
    assert await sequencer.unsettled_before("c", first) is None
    assert await sequencer.unsettled_before("c", third) in {first, second}
    await db.messages.update_one({"_id": first}, {"$set": {"status": "sent"}})
    await db.messages.update_one({"_id": second}, {"$set": {"status": "failed"}})
    assert await sequencer.unsettled_before("c", third) is None
