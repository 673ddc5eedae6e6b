"""Per-chat order of replies: a reply is not sent while an earlier reply of its chat is still on its way.

The dispatcher takes many replies at once (prefetch), possibly in several processes, and a reply that
fails waits in a wait queue while the ones behind it would go ahead. So before sending, it looks in
the database for an earlier reply of the same chat (reply ids sort by creation) that is neither sent
nor failed; if there is one, this reply is deferred: it goes round the shortest wait queue without
spending an attempt and looks again. Within one process, replies of a chat also take turns in the
order they were handed over, so a burst of replies does not defer itself behind its own first one.

A reply that has been on its way for longer than the whole retry schedule (`stale_after`) is stuck
(its event lost, say) and stops holding the ones behind it.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from omni_runtime.database import Database
from omni_runtime.errors import Deferred
from omni_runtime.ids import lowest_id_at

# Statuses of a reply still on its way; every other status (sent, delivered, read, failed) is settled.
UNSETTLED = ("queued",)


def retry_schedule_seconds(delays_ms: Sequence[int], max_attempts: int, attempt_timeout: float) -> float:
    """How long a reply can take from its first attempt to being parked: every wait and every attempt."""
    waits = [delays_ms[min(n, len(delays_ms) - 1)] for n in range(max_attempts - 1)]
    return sum(waits) / 1000 + max_attempts * attempt_timeout


class Sequencer:
    def __init__(self, db: Database, stale_after: float) -> None:
        self._db = db
        self._stale_after = stale_after
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, chat_id: str) -> AsyncIterator[None]:
        """Wait for the replies of the chat handed over before this one in this process (first come, first served)."""
        lock, users = self._turns.get(chat_id, (asyncio.Lock(), 0))
        self._turns[chat_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[chat_id]
            if users == 1:
                del self._turns[chat_id]
            else:
                self._turns[chat_id] = (lock, users - 1)

    async def ensure_first(self, chat_id: str, message_id: str) -> None:
        """Raise Deferred while an earlier reply of the chat is unsettled."""
        earlier = await self.unsettled_before(chat_id, message_id)
        if earlier is not None:
            raise Deferred(f"reply {earlier} of chat {chat_id} goes first")

    async def unsettled_before(self, chat_id: str, message_id: str) -> str | None:
        since = lowest_id_at(time.time() - self._stale_after)
        # Equalities only, the rest compared here: with the id range (or `$in`) in the filter, the nx-27017
        # stand-in read every message (1.2 s at 100,000, holding its lock: every other command waited).
        for status in UNSETTLED:
            found = self._db.messages.find({"chat_id": chat_id, "status": status}, {"_id": 1, "direction": 1})
            async for earlier in found:
                if earlier.get("direction") == "outgoing" and since <= str(earlier["_id"]) < message_id:
                    return str(earlier["_id"])
        return None
