"""What routing relies on in the database: atomic capacity claims, their repair, compare-and-set chat changes,
and the one stand-in difference that decided how due times are stored."""

import asyncio
import time
from datetime import UTC, datetime

import pytest

from omni_router.capacity import Capacity, Claim, fresh_capacity
from omni_router.notify import notes
from omni_router.store import ChatStore
from omni_runtime.database import Database, ensure_indexes
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def _operator(db: Database, operator_id: str, max_chats: int, status: str = "online") -> None:
    await db.operators.insert_one({"_id": operator_id, "max_chats": max_chats, "status": status, **fresh_capacity()})


async def test_racing_claims_take_exactly_the_capacity(db: Database) -> None:
    await _operator(db, "op", max_chats=7)
    capacity = Capacity(db)
    claims = await asyncio.gather(*(capacity.claim("op", f"chat-{n}") for n in range(40)))
    assert claims.count(Claim.TAKEN) == 7 and claims.count(Claim.REFUSED) == 33
    operator = await db.operators.find_one({"_id": "op"})
    assert operator is not None and operator["load"] == 7 and len(set(operator["holds"])) == 7
    held = operator["holds"][0]
    assert await capacity.claim("op", held) is Claim.HELD  # claiming twice for one chat takes nothing
    assert await capacity.release("op", held) and not await capacity.release("op", held)
    # A claim based on a load read before someone else's claim is refused: fairness decisions stay true.
    assert await capacity.claim("op", "late", expected_load=5) is Claim.REFUSED
    assert await capacity.claim("op", "late", expected_load=6) is Claim.TAKEN
    await db.operators.update_one({"_id": "op"}, {"$set": {"status": "offline"}})
    await capacity.release("op", "late")
    assert await capacity.claim("op", "offline-chat") is Claim.REFUSED
    assert await capacity.claim("op", "offline-chat", online_only=False) is Claim.TAKEN


async def test_repair_frees_units_no_chat_uses_and_records_units_chats_use(db: Database) -> None:
    await _operator(db, "op", max_chats=5)
    capacity = Capacity(db)
    for chat_id in ("closed-chat", "fresh-claim"):
        assert await capacity.claim("op", chat_id) is Claim.TAKEN
    await db.operators.update_one({"_id": "op"}, {"$set": {"hold_at.closed-chat": time.time() - 60}})
    await db.chats.insert_many(
        [
            {"_id": "closed-chat", "status": "closed", "operator_id": "op", "reserved_for": None},
            {"_id": "held-chat", "status": "assigned", "operator_id": "op", "reserved_for": None},
        ]
    )
    assert await capacity.repair(grace_seconds=10) == ["op"]
    operator = await db.operators.find_one({"_id": "op"})
    assert operator is not None
    # "fresh-claim" may be a claim whose chat write is still on its way: left alone until the grace ran out.
    assert sorted(operator["holds"]) == ["fresh-claim", "held-chat"] and operator["load"] == 2
    assert await capacity.repair(grace_seconds=10) == []


async def test_a_chat_change_applies_once_with_its_notifications(db: Database) -> None:
    await ensure_indexes(db)
    store = ChatStore(db)
    await db.chats.insert_one({"_id": "c", "status": "new", "offered_to": [], "offer_version": 0, "outbox": []})
    chat = await store.chat("c")
    assert chat is not None
    changes = [
        store.change(chat, {"offered_to": [op]}, notify=notes("chat.offered", [op]), where={"status": "new"})
        for op in ("a", "b", "c")
    ]
    results = await asyncio.gather(*changes)
    [winner] = [r for r in results if r is not None]
    assert winner["offer_version"] == 1 and len(winner["outbox"]) == 1
    assert winner["outbox"][0]["operator_id"] == winner["offered_to"][0]
    assert isinstance(winner["outbox_at"], float)


async def test_the_stand_in_stores_a_datetime_given_to_set_as_a_string(db: Database, infra: Infra) -> None:
    """Why due times are epoch seconds: on nx-27017 a `$set` datetime no longer compares as a date."""
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await db.probe.insert_one({"_id": 1, "inserted": moment})
    await db.probe.update_one({"_id": 1}, {"$set": {"set": moment, "number": moment.timestamp()}})
    stored = await db.probe.find_one({"_id": 1})
    assert stored is not None and stored["inserted"] == moment and stored["number"] == moment.timestamp()
    if infra.kind == "local":
        assert isinstance(stored["set"], str)
        assert await db.probe.count_documents({"set": {"$lte": moment}}) == 0
    else:
        assert stored["set"] == moment
    assert await db.probe.count_documents({"number": {"$lte": moment.timestamp()}}) == 1
