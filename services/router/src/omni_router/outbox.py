"""The outbox sweep: replies stored while the broker could not confirm are published once it can."""

import asyncio
import logging
import time
from datetime import datetime, timedelta

from omni_router.desk import Desk
from omni_runtime.database import Database

log = logging.getLogger(__name__)


async def sweep_once(desk: Desk, older_than: timedelta) -> int:
    """Publish the replies stored more than `older_than` ago and not published yet, oldest first. Found by
    their `publish_due` alone: one indexed field, which the nx-27017 stand-in reads without a scan."""
    published = 0
    stale = desk.db.messages.find({"publish_due": {"$lt": time.time() - older_than.total_seconds()}}).sort("_id", 1)
    async for message in stale:
        if await desk.publish_outgoing(message):
            published += 1
    return published


async def backfill_publish_due(db: Database) -> int:
    """Replies 0.1 stored unpublished (without `publish_due`) are given one, so the sweep finds them; at start."""
    given = 0
    stray = {"direction": "outgoing", "published": False, "status": "queued", "publish_due": {"$exists": False}}
    async for message in db.messages.find(stray, {"created_at": 1}):
        created = message.get("created_at")
        due = created.timestamp() if isinstance(created, datetime) else time.time()
        done = await db.messages.update_one({"_id": message["_id"], **stray}, {"$set": {"publish_due": due}})
        given += done.modified_count
    return given


async def run_sweeper(desk: Desk, every_seconds: float) -> None:
    await backfill_publish_due(desk.db)
    while True:
        await asyncio.sleep(every_seconds)
        try:
            count = await sweep_once(desk, timedelta(seconds=every_seconds))
            if count:
                log.info("outbox published stored replies", extra={"count": count})
        except Exception:
            log.exception("outbox sweep failed; next sweep retries")
