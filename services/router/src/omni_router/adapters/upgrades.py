"""Data written by 0.1, upgraded: every difference from that version's documents is handled here.

At start: operators gain capacity fields (the repair then records their chats), waiting chats join their queue's
line (`waiting_in`), unpublished replies gain `publish_due` (so the reply outbox's sweep finds them). As they are
met: a contact without `sender_key` is found once by the old query, then keyed; a chat outbox written as a list
(`outbox`) is published by the routing sweep like any other. Chats stored before reports get the times reports
select them by.

The database records the data version its upgrades reached (`upgrades`, one document): a start with nothing left to
upgrade reads that one document by `_id`. The steps look for documents without a field (`$exists: false`): MongoDB
answers the report times' from no index (the sparse `created_ts` one cannot), reading every chat at every start of
every router; the capacity fields' reads every operator on both servers. So they run only until they are recorded
done: on the first start of this version, and again after an interrupted one. Nothing this version writes needs them; a
router of an earlier version still writing beside it (a rolling upgrade) does: remove the document
(`db.upgrades.deleteOne({_id: "data"})`) and the next start upgrades again.
"""

import logging
import time
from datetime import UTC, datetime

from omni_router.adapters.documents import Database, Document, moment

log = logging.getLogger(__name__)

# A chat's outbox as 0.1 wrote it: a list of notes under this name (now `unpublished`, keyed by note).
LEGACY_OUTBOX = "outbox"


# The version of the data this code's upgrades bring the database to; a new upgrade step raises it.
DATA_VERSION = 1
# Where the version reached is recorded: `{"_id": "data", "version": <int>, "at": <date>}`.
UPGRADES = "upgrades"
RECORD = {"_id": "data"}


async def upgrade(db: Database) -> None:
    """The upgrades run at start until one run of them is recorded (each is harmless to repeat)."""
    recorded = await db[UPGRADES].find_one(RECORD)
    if recorded is not None and int(recorded.get("version") or 0) >= DATA_VERSION:
        return
    await ensure_capacity_fields(db)
    joined = await backfill_waiting_line(db)
    given = await backfill_publish_due(db)
    dated = await backfill_report_times(db)
    if joined or given or dated:
        log.info(
            "upgraded older data",
            extra={"waiting_chats": joined, "unpublished_replies": given, "chats_dated_for_reports": dated},
        )
    # Only after every step: a start interrupted before this upgrades again.
    changes = {"version": DATA_VERSION, "at": datetime.now(UTC)}
    await db[UPGRADES].update_one(RECORD, {"$set": changes}, upsert=True)


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


async def backfill_report_times(db: Database) -> int:
    """Chats stored before reports: their creation (and closing, and resolution) as the epoch seconds reports select
    by. Their message counts and first responses were never kept: they count as none."""
    dated = 0
    async for chat in db.chats.find({"created_ts": {"$exists": False}}, {"created_at": 1, "closed_at": 1}):
        created, closed = moment(chat.get("created_at")), moment(chat.get("closed_at"))
        times: Document = {"created_ts": created.timestamp() if created else 0.0}
        if closed is not None:
            times["closed_ts"] = closed.timestamp()
            if created is not None:
                times["resolution_seconds"] = max(0.0, (closed - created).total_seconds())
        done = await db.chats.update_one({"_id": chat["_id"], "created_ts": {"$exists": False}}, {"$set": times})
        dated += done.modified_count
    return dated


async def key_contact(db: Database, contact: Document, key: str) -> None:
    """A contact stored without `sender_key` (found by channel and sender) is keyed, so the next lookup is by key."""
    if "sender_key" not in contact:
        await db.contacts.update_one({"_id": contact["_id"]}, {"$set": {"sender_key": key}})
