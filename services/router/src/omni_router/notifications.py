"""Stored operator notifications: what the live stream (`GET /api/events`) replays and tails.

The Notifier records each notification here before publishing it, so what a stream shows is what
the operator's queue gets. Ids come from `new_id()` and sort by time; a stream's position is the
greatest id it has delivered, which is what a client sends back as `Last-Event-ID`.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pymongo.errors import BulkWriteError

from omni_contracts import ChatNotification
from omni_runtime.database import Database, Document
from omni_runtime.ids import lowest_id_at, new_id, time_of

log = logging.getLogger(__name__)

# Notifications are inserted a little after their id is made, so two writers can commit out of id
# order: every read of "what is new" looks this far back and skips what it already handed out. It is
# also the clock difference between router hosts that streams tolerate.
LATE_SECONDS = 2.0
BATCH = 500
DUPLICATE_KEY = 11000
# How often notifications past NOTIFICATION_RETENTION_HOURS are deleted.
PRUNE_EVERY_SECONDS = 600.0
# A stream that falls this far behind stops being fed and catches up from the database instead.
BACKLOG = 1_000


async def record(db: Database, notes: Sequence[ChatNotification]) -> None:
    """Store `notes` for the streams, in one write; a note published again (an outbox retry) keeps its first record."""
    if not notes:
        return
    docs = [
        {
            "_id": new_id(),
            "operator_id": note.operator_id,
            "event": note.event,
            "event_id": note.event_id,
            "body": note.model_dump_json(),
        }
        for note in notes
    ]
    try:
        await db.notifications.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
            raise


async def stored_after(db: Database, operator_id: str, after: str) -> AsyncIterator[Document]:
    """The operator's notifications with ids above `after`, oldest first, read in batches."""
    while True:
        query = {"operator_id": operator_id, "_id": {"$gt": after}}
        batch = await db.notifications.find(query).sort("_id", 1).limit(BATCH).to_list()
        for doc in batch:
            yield doc
        if len(batch) < BATCH:
            return
        after = batch[-1]["_id"]


async def prune(db: Database, retention_hours: float) -> int:
    """Delete notifications older than the retention; answers how many."""
    result = await db.notifications.delete_many({"_id": {"$lt": lowest_id_at(time.time() - retention_hours * 3600)}})
    if result.deleted_count:
        log.info("pruned old notifications", extra={"count": result.deleted_count})
    return result.deleted_count


@dataclass(eq=False)
class Subscription:
    """One stream's feed from the hub; `behind` is set when the hub dropped notifications for it."""

    operator_id: str
    queue: asyncio.Queue[Document] = field(default_factory=lambda: asyncio.Queue(BACKLOG))
    behind: bool = False


class Hub:
    """One poller per router: reads new notifications every `interval` seconds while any stream is open,
    and hands each to the streams of its operator. Streams do their own replay; this is the live part."""

    def __init__(self, db: Database, interval: float = 0.2) -> None:
        self.db = db
        self._interval = interval
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._wanted = asyncio.Event()
        # Ids handed out within the last LATE_SECONDS (and a little more), in id order.
        self._seen: dict[str, None] = {}

    @asynccontextmanager
    async def subscribe(self, operator_id: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(operator_id)
        self._subscriptions.setdefault(operator_id, set()).add(subscription)
        self._wanted.set()
        try:
            yield subscription
        finally:
            mine = self._subscriptions.get(operator_id, set())
            mine.discard(subscription)
            if not mine:
                self._subscriptions.pop(operator_id, None)
            if not self._subscriptions:
                self._wanted.clear()

    async def run(self) -> None:
        """Poll until cancelled; a failed read is logged and the next one tries again."""
        while True:
            await self._wanted.wait()
            try:
                await self.poll()
            except Exception:
                log.exception("reading new notifications failed; the next poll retries")
            await asyncio.sleep(self._interval)

    async def poll(self) -> None:
        now = time.time()
        window = lowest_id_at(now - LATE_SECONDS)
        query = {"_id": {"$gt": window}, "operator_id": {"$in": list(self._subscriptions)}}
        async for doc in self.db.notifications.find(query).sort("_id", 1):
            if doc["_id"] not in self._seen:
                self._seen[doc["_id"]] = None
                self._hand_out(doc)
        forget = lowest_id_at(now - 2 * LATE_SECONDS)
        for seen in [s for s in self._seen if s < forget]:
            del self._seen[seen]

    def _hand_out(self, doc: Document) -> None:
        for subscription in self._subscriptions.get(doc["operator_id"], ()):
            try:
                subscription.queue.put_nowait(doc)
            except asyncio.QueueFull:
                subscription.behind = True


class Position:
    """What one stream has delivered: everything above `start` it sent, and its greatest id.

    A notification committed late (below the greatest id already sent) is still delivered, but the
    event keeps the greatest id as its SSE id, so a reconnect never replays what came before it.
    """

    def __init__(self, start: str) -> None:
        self.start = start
        self.last = start
        self._sent: dict[str, None] = {}

    def take(self, doc: Document) -> bool:
        """Whether `doc` is still to be sent; if so it counts as sent from now on."""
        id_: str = doc["_id"]
        if id_ <= self.start or id_ in self._sent:
            return False
        self._sent[id_] = None
        self.last = max(self.last, id_)
        if len(self._sent) > 2 * BACKLOG:
            forget = lowest_id_at(time_of(self.last) - 2 * LATE_SECONDS)
            self._sent = {s: None for s in self._sent if s >= forget}
        return True

    def catch_up_from(self) -> str:
        """Where a stream that fell behind re-reads from: a little before its position, late commits included."""
        return max(self.start, lowest_id_at(time_of(self.last) - LATE_SECONDS))
