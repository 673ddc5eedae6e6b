"""Operator capacity: units of `max_chats`, claimed and released atomically on the operator's document.

An operator document carries `load` (units in use), `holds` (the chats holding them: assigned
chats and `to_available` offers) and `hold_at` (when each was claimed, epoch seconds). A claim
checks and takes a unit in one `find_one_and_update`, so routers running side by side can never
overfill an operator; both claim and release are keyed by chat, so repeating either is harmless.
A crash between a claim and the chat write that uses it leaves a unit nobody uses: `repair` frees it.
"""

import logging
import time
from collections import defaultdict
from enum import Enum

from omni_router.store import OPEN_STATUSES, open_chats
from omni_runtime.database import Database, Document

log = logging.getLogger(__name__)

# Concurrent claims on one operator make all but one fail; each failure means another claim won.
CLAIM_ATTEMPTS = 20


class Claim(Enum):
    TAKEN = "taken"  # a unit was taken now for this chat
    HELD = "held"  # the chat already holds one of this operator's units
    REFUSED = "refused"  # at capacity, offline (when online is required), unknown, or changed meanwhile


def fresh_capacity() -> Document:
    """The capacity fields of a new operator ($addToSet-free: arrays are initialised on insert)."""
    return {"load": 0, "holds": [], "hold_at": {}}


class Capacity:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self,
        operator_id: str,
        chat_id: str,
        *,
        expected_load: int | None = None,
        online_only: bool = True,
    ) -> Claim:
        """Take one unit for `chat_id` if the operator is under capacity.

        With `expected_load` (what a routing decision was based on) the claim also fails when the
        operator's load moved meanwhile, so "fewest active chats" holds under concurrency; without
        it the claim retries against fresh reads.
        """
        for _ in range(CLAIM_ATTEMPTS):
            load = expected_load
            if load is None:
                operator = await self._db.operators.find_one({"_id": operator_id}, {"load": 1, "holds": 1})
                if operator is None:
                    return Claim.REFUSED
                if chat_id in operator.get("holds", []):
                    return Claim.HELD
                load = int(operator.get("load", 0))
            query: Document = {
                "_id": operator_id,
                "load": load,
                "max_chats": {"$gt": load},
                "holds": {"$nin": [chat_id]},
            }
            if online_only:
                query["status"] = "online"
            stamp = time.time()
            taken = await self._db.operators.find_one_and_update(
                query,
                {
                    "$inc": {"load": 1},
                    "$push": {"holds": chat_id},
                    "$set": {f"hold_at.{chat_id}": stamp, "last_routed_at": stamp},
                },
                {"_id": 1},
            )
            if taken is not None:
                return Claim.TAKEN
            if expected_load is not None:
                return Claim.HELD if await self.holds(operator_id, chat_id) else Claim.REFUSED
        return Claim.REFUSED

    async def holds(self, operator_id: str, chat_id: str) -> bool:
        return await self._db.operators.count_documents({"_id": operator_id, "holds": chat_id}) > 0

    async def take(self, operator_id: str, chat_id: str) -> bool:
        """Record a unit the chat uses whatever the load (repairing a hold that was lost)."""
        taken = await self._db.operators.find_one_and_update(
            {"_id": operator_id, "holds": {"$nin": [chat_id]}},
            {"$inc": {"load": 1}, "$push": {"holds": chat_id}, "$set": {f"hold_at.{chat_id}": time.time()}},
            {"_id": 1},
        )
        return taken is not None

    async def release(self, operator_id: str | None, chat_id: str) -> bool:
        """Give back the chat's unit; False if it held none (already released)."""
        if not operator_id:
            return False
        released = await self._db.operators.find_one_and_update(
            {"_id": operator_id, "holds": chat_id},
            {"$inc": {"load": -1}, "$pull": {"holds": chat_id}, "$unset": {f"hold_at.{chat_id}": ""}},
            {"_id": 1},
        )
        return released is not None

    async def repair(self, grace_seconds: float) -> list[str]:
        """Make every operator's holds match the chats: free units no open chat uses (claimed more than
        `grace_seconds` ago, so a claim whose chat write is still on its way is left alone) and record
        units open chats use without a hold. Answers the operators who got capacity back."""
        freed: list[str] = []
        cutoff = time.time() - grace_seconds
        operators = await self._db.operators.find({}, {"holds": 1, "hold_at": 1}).to_list()
        # The open chats, read once for all operators (nx-27017 reads every chat for a `$or` filter).
        using: defaultdict[str, set[str]] = defaultdict(set)
        async for chat in open_chats(self._db, {"operator_id": 1, "reserved_for": 1}):
            for holder in (chat.get("operator_id"), chat.get("reserved_for")):
                if holder:
                    using[holder].add(chat["_id"])
        for operator in operators:
            op = operator["_id"]
            holds = list(operator.get("holds", []))
            users = using.get(op, set())
            stamps = operator.get("hold_at") or {}
            stale = [c for c in holds if c not in users and float(stamps.get(c, 0)) < cutoff]
            for chat_id in stale:
                if await self._still_unused(op, chat_id) and await self.release(op, chat_id):
                    log.warning("freed a capacity unit no chat used", extra={"operator_id": op, "chat_id": chat_id})
                    freed.append(op)
            for chat_id in users - set(holds):
                if await self.take(op, chat_id):
                    log.warning("recorded a capacity unit a chat used", extra={"operator_id": op, "chat_id": chat_id})
        return freed

    async def _still_unused(self, operator_id: str, chat_id: str) -> bool:
        chat = await self._db.chats.find_one({"_id": chat_id}, {"status": 1, "operator_id": 1, "reserved_for": 1})
        if chat is None or chat.get("status") not in OPEN_STATUSES:
            return True
        return operator_id not in (chat.get("operator_id"), chat.get("reserved_for"))


async def ensure_capacity_fields(db: Database) -> None:
    """Operators created before capacity was tracked start empty; `repair` then records their chats."""
    await db.operators.update_many({"load": {"$exists": False}}, {"$set": fresh_capacity()})
