"""The outbox sweep: replies stored while the broker could not confirm are published once it can."""

import asyncio
import logging
from datetime import timedelta

from omni_router.desk import Desk
from omni_router.store import now

log = logging.getLogger(__name__)


async def sweep_once(desk: Desk, older_than: timedelta) -> int:
    published = 0
    stale = desk.db.messages.find(
        {
            "direction": "outgoing",
            "status": "queued",
            "published": False,
            "created_at": {"$lt": now() - older_than},
        }
    ).sort("_id", 1)
    async for message in stale:
        if await desk.publish_outgoing(message):
            published += 1
    return published


async def run_sweeper(desk: Desk, every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            count = await sweep_once(desk, timedelta(seconds=every_seconds))
            if count:
                log.info("outbox published stored replies", extra={"count": count})
        except Exception:
            log.exception("outbox sweep failed; next sweep retries")
