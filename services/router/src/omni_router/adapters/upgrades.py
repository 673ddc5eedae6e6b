"""Data written by 0.1, upgraded: every difference from that version's documents is handled here.

At start: operators gain capacity fields (the repair then records their chats), waiting chats join their queue's
line (`waiting_in`), unpublished replies gain `publish_due` (so the reply outbox's sweep finds them). As they are
met: a contact without `sender_key` is found once by the old query, then keyed; a chat outbox written as a list
(`outbox`) is published by the routing sweep like any other.
"""

import logging
import time
from datetime import datetime

from omni_router.adapters.documents import Database, Document

log = logging.getLogger(__name__)

# A chat's outbox as 0.1 wrote it: a list of notes under this name (now `unpublished`, keyed by note).
LEGACY_OUTBOX = "outbox"


async def upgrade(db: Database) -> None:
    """The upgrades run once at start (each is harmless to repeat)."""
    await ensure_capacity_fields(db)
    joined = await backfill_waiting_line(db)
    given = await backfill_publish_due(db)
    if joined or given:
        log.info("upgraded data from 0.1", extra={"waiting_chats": joined, "unpublished_replies": given})


def fresh_capacity() -> Document:
    """The capacity fields of an operator without any (arrays are initialised, never `$addToSet`)."""
    return {"load": 0, "holds": [], "hold_at": {}}


async def ensure_capacity_fields(db: Database) -> None:
    """Operators created before capacity was tracked start empty; the capacity repair then records their chats."""
    await db.operators.update_many({"load": {"$exists": False}}, {"$set": fresh_capacity()})


async def backfill_waiting_line(db: Database) -> int:
    """Chats that started waiting before `waiting_in` existed join their queue's line."""
    joined = 0
    stray = {"status": "new", "waiting": True, "waiting_in": {"$exists": False}}
    async for chat in db.chats.find(stray, {"queue_id": 1}):
        done = await db.chats.update_one({"_id": chat["_id"], **stray}, {"$set": {"waiting_in": chat["queue_id"]}})
        joined += done.modified_count
    return joined


async def backfill_publish_due(db: Database) -> int:
    """Replies stored unpublished without `publish_due` are given one, so the reply outbox's sweep finds them."""
    given = 0
    stray = {"direction": "outgoing", "published": False, "status": "queued", "publish_due": {"$exists": False}}
    async for message in db.messages.find(stray, {"created_at": 1}):
        created = message.get("created_at")
        due = created.timestamp() if isinstance(created, datetime) else time.time()
        done = await db.messages.update_one({"_id": message["_id"], **stray}, {"$set": {"publish_due": due}})
        given += done.modified_count
    return given


async def key_contact(db: Database, contact: Document, key: str) -> None:
    """A contact stored without `sender_key` (found by channel and sender) is keyed, so the next lookup is by key."""
    if "sender_key" not in contact:
        await db.contacts.update_one({"_id": contact["_id"]}, {"$set": {"sender_key": key}})
