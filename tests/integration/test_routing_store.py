"""What routing relies on in the database: atomic capacity claims, their repair, compare-and-set chat changes,
and the one stand-in difference that decided how due times are stored."""

import asyncio
import time
from datetime import UTC, datetime

import pytest

from omni_contracts import UnifiedMessage
from omni_providers import Channel
from omni_router.capacity import Capacity, Claim, fresh_capacity
from omni_router.notify import Notifier, notes
from omni_router.store import OUTBOX, ChatStore
from omni_runtime.broker import Broker
from omni_runtime.database import Database, ensure_indexes
from omni_runtime.service import topology_of
from omni_runtime.settings import Settings
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
    await db.chats.insert_one({"_id": "c", "status": "new", "offered_to": [], "offer_version": 0, OUTBOX: {}})
    chat = await store.chat("c")
    assert chat is not None
    changes = [
        store.change(chat, {"offered_to": [op]}, notify=notes("chat.offered", [op]), where={"status": "new"})
        for op in ("a", "b", "c")
    ]
    results = await asyncio.gather(*changes)
    [winner] = [r for r in results if r is not None]
    assert winner["offer_version"] == 1 and len(winner[OUTBOX]) == 1
    [note] = winner[OUTBOX].values()
    assert note["operator_id"] == winner["offered_to"][0]
    assert isinstance(winner["outbox_at"], float)


async def test_a_change_adds_to_the_outbox_and_hands_back_only_its_own_notes(db: Database, settings: Settings) -> None:
    """The flake this fixed: an accept read the chat while its offers were still in the outbox, their publisher
    removed them, and the accept wrote back the outbox it had read, so every offer went out a second time."""
    store = ChatStore(db)
    await db.chats.insert_one({"_id": "c", "status": "new", "offered_to": [], "offer_version": 0, OUTBOX: {}})
    chat = await store.chat("c")
    assert chat is not None
    offered = await store.change(chat, {"offered_to": ["a", "b"]}, notify=notes("chat.offered", ["a", "b"]))
    assert offered is not None and [n["operator_id"] for n in offered[OUTBOX].values()] == ["a", "b"]
    accepting = await store.chat("c")  # read while the offers are still on their way
    assert accepting is not None and len(accepting[OUTBOX]) == 2
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    try:
        notifier = Notifier(broker, db)
        assert await notifier.deliver(offered)  # the offers' publisher removes them
        after_offers = await store.chat("c")
        assert after_offers is not None and after_offers[OUTBOX] == {} and "outbox_at" not in after_offers
        assigned = await store.change(
            accepting, {"status": "assigned"}, notify=[*notes("chat.assigned", ["a"]), *notes("chat.revoked", ["b"])]
        )
        assert assigned is not None
        assert [n["event"] for n in assigned[OUTBOX].values()] == ["chat.assigned", "chat.revoked"]
        stored = await store.chat("c")
        assert stored is not None
        assert [n["event"] for _, n in sorted(stored[OUTBOX].items())] == ["chat.assigned", "chat.revoked"]
        assert await notifier.deliver(assigned)
        done = await store.chat("c")
        assert done is not None and done[OUTBOX] == {} and "outbox_at" not in done
    finally:
        await broker.close()


async def test_notes_published_out_of_order_leave_the_sweep_deadline_until_the_last_is_out(
    db: Database, settings: Settings
) -> None:
    store = ChatStore(db)
    await db.chats.insert_one({"_id": "c", "status": "new", "offered_to": [], "offer_version": 0, OUTBOX: {}})
    chat = await store.chat("c")
    assert chat is not None
    offered = await store.change(chat, {"offered_to": ["a"]}, notify=notes("chat.offered", ["a"]))
    assert offered is not None
    assigned = await store.change(offered, {"status": "assigned"}, notify=notes("chat.assigned", ["a"]))
    assert assigned is not None and [n["event"] for n in assigned[OUTBOX].values()] == ["chat.assigned"]
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    try:
        notifier = Notifier(broker, db)
        assert await notifier.deliver(assigned)  # the later change's publisher is first
        left = await store.chat("c")
        assert left is not None and [n["event"] for n in left[OUTBOX].values()] == ["chat.offered"]
        assert "outbox_at" in left  # the offer is still on its way: the sweep keeps watching
        assert await notifier.deliver(offered)
    finally:
        await broker.close()
    done = await store.chat("c")
    assert done is not None and done[OUTBOX] == {} and "outbox_at" not in done


async def test_the_sweep_publishes_an_outbox_0_1_left_as_a_list(db: Database, settings: Settings) -> None:
    [note] = notes("chat.offered", ["a"])
    await db.chats.insert_one({"_id": "old", "status": "new", "outbox": [note], "outbox_at": time.time() - 60})
    # Operator "a" no longer exists (no queue): their note is dropped as done, still recorded for the streams.
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    try:
        assert await Notifier(broker, db).deliver_stale(older_than_seconds=5) == 1
    finally:
        await broker.close()
    chat = await db.chats.find_one({"_id": "old"})
    assert chat is not None and "outbox" not in chat and "outbox_at" not in chat
    assert await db.notifications.count_documents({"event_id": note["event_id"]}) == 1


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


async def test_channels_and_queues_are_read_again_after_the_ttl_or_an_admin_change(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChatStore(db)
    await db.queues.insert_one({"_id": "q", "routing_rule": "to_all"})
    assert (await store.queue("q") or {})["routing_rule"] == "to_all"
    await db.queues.update_one({"_id": "q"}, {"$set": {"routing_rule": "to_available"}})
    assert (await store.queue("q") or {})["routing_rule"] == "to_all"  # kept: every message reads it
    store.forget_settings()  # what the admin API of this router does on a change
    assert (await store.queue("q") or {})["routing_rule"] == "to_available"
    await db.queues.update_one({"_id": "q"}, {"$set": {"routing_rule": "to_all"}})
    monkeypatch.setattr("omni_router.store.SETTINGS_TTL_SECONDS", 0.0)  # another router's change, once it ran out
    assert (await store.queue("q") or {})["routing_rule"] == "to_all"
    await db.queues.delete_one({"_id": "q"})
    assert await store.queue("q") is None


async def test_a_contact_stored_before_sender_keys_is_found_and_keyed(db: Database) -> None:
    await ensure_indexes(db)
    await db.contacts.insert_one({"_id": "old", "channel_id": "ch", "external_id": "cust", "name": "Old"})
    channel = Channel(id="ch", name="Shop", provider="thirdparty", source="s", queue_id="q", settings={})
    store = ChatStore(db)

    def customer_message(message_id: str, sender: str) -> UnifiedMessage:
        return UnifiedMessage(
            provider="thirdparty",
            channel_id="ch",
            provider_message_id=message_id,
            sender=sender,
            recipient="bot",
            sent_at=datetime.now(UTC),
            text="hello",
        )

    message = customer_message("m-1", sender="cust")
    assert (await store.contact_for(channel, message))["_id"] == "old"  # not a second contact of the sender
    assert (await db.contacts.find_one({"_id": "old"}) or {})["sender_key"] == "ch:cust"
    assert (await store.contact_for(channel, message))["_id"] == "old"
    fresh = await store.contact_for(channel, customer_message("m-2", sender="new"))
    assert fresh["sender_key"] == "ch:new" and await db.contacts.count_documents({}) == 2


async def test_chats_waiting_since_0_1_join_their_queues_line_at_start(db: Database) -> None:
    await db.chats.insert_many(
        [
            {"_id": "w", "status": "new", "waiting": True, "queue_id": "q"},
            {"_id": "offered", "status": "new", "waiting": False, "queue_id": "q"},
            {"_id": "in-line", "status": "new", "waiting": True, "queue_id": "q", "waiting_in": "q"},
        ]
    )
    assert await ChatStore(db).backfill_waiting_line() == 1
    assert sorted([c["_id"] async for c in db.chats.find({"waiting_in": "q"})]) == ["in-line", "w"]
