"""What routing relies on in the database: atomic capacity claims, their repair, compare-and-set chat changes
with their outbox, the settings cache and the upgrades of 0.1's chats and contacts."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from omni_contracts.events import NotificationKind
from omni_router.adapters.broker_publishers import BrokerEvents, BrokerOperatorQueues
from omni_router.adapters.clock import SystemClock
from omni_router.adapters.mongo_chats import OUTBOX, MongoChats
from omni_router.adapters.mongo_contacts import MongoContacts
from omni_router.adapters.mongo_operators import MongoOperators
from omni_router.adapters.mongo_settings import CachedRoutingSettings
from omni_router.adapters.notification_log import MongoNotificationLog
from omni_router.adapters.upgrades import (
    UPGRADES,
    backfill_report_times,
    backfill_waiting_line,
    fresh_capacity,
    upgrade,
)
from omni_router.adapters.webhooks import MongoWebhookSubscriptions
from omni_router.domain.capacity import Claim
from omni_router.domain.changes import NEW_ONLY, OPEN, update
from omni_router.domain.model import Chat, Contact
from omni_router.domain.notifications import Notification, Queued, notifications
from omni_router.service_layer.capacity import Capacity
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.notices import Notices
from omni_runtime.broker import Broker
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.ids import new_id
from omni_runtime.service import topology_of
from omni_runtime.settings import Settings
from tests.support.commands import Writes

CLOCK = SystemClock()


def notes(kind: NotificationKind, operator_ids: list[str]) -> list[Notification]:
    return notifications(kind, operator_ids, new_id=new_id)


def capacity_of(db: Database) -> Capacity:
    return Capacity(MongoOperators(db), MongoChats(db, CLOCK), CLOCK)


def notices_of(db: Database, broker: Broker) -> Notices:
    integration = IntegrationEvents(MongoWebhookSubscriptions(db), BrokerEvents(broker), CLOCK)
    return Notices(
        BrokerOperatorQueues(broker),
        MongoNotificationLog(db),
        MongoChats(db, CLOCK),
        MongoOperators(db),
        CLOCK,
        integration,
    )


def operator_of(note: Queued) -> str:
    assert isinstance(note, Notification)
    return note.operator_id


async def read(chats: MongoChats, chat_id: str) -> Chat:
    chat = await chats.get(chat_id)
    assert chat is not None
    return chat


pytestmark = pytest.mark.integration


async def _operator(db: Database, operator_id: str, max_chats: int, status: str = "online") -> None:
    await db.operators.insert_one({"_id": operator_id, "max_chats": max_chats, "status": status, **fresh_capacity()})


async def test_racing_claims_take_exactly_the_capacity(db: Database) -> None:
    await _operator(db, "op", max_chats=7)
    capacity = capacity_of(db)
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
    capacity = capacity_of(db)
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
    chats = MongoChats(db, CLOCK)
    await db.chats.insert_one({"_id": "c", "status": "new", "offered_to": [], "offer_version": 0, OUTBOX: {}})
    chat = await read(chats, "c")
    changes = [
        chats.change(update(chat, NEW_ONLY, notes("chat.offered", [op]), offered_to=(op,))) for op in ("a", "b", "c")
    ]
    results = await asyncio.gather(*changes)
    [winner] = [r for r in results if r is not None]
    assert winner.chat.offer_version == 1 and len(winner.outbox.queued) == 1
    [(_, note)] = winner.outbox.queued
    assert operator_of(note) == winner.chat.offered_to[0]
    assert isinstance(winner.chat.outbox_at, float)
    stored = await db.chats.find_one({"_id": "c"})
    assert stored is not None and len(stored[OUTBOX]) == 1 and stored["offered_to"] == [operator_of(note)]


async def test_a_change_adds_to_the_outbox_and_hands_back_only_its_own_notes(db: Database, settings: Settings) -> None:
    """The flake this fixed: an accept read the chat while its offers were still in the outbox, their publisher
    removed them, and the accept wrote back the outbox it had read, so every offer went out a second time."""
    chats = MongoChats(db, CLOCK)
    await db.chats.insert_one({"_id": "c", "status": "new", "offered_to": [], "offer_version": 0, OUTBOX: {}})
    chat = await read(chats, "c")
    offered = await chats.change(update(chat, NEW_ONLY, notes("chat.offered", ["a", "b"]), offered_to=("a", "b")))
    assert offered is not None and [operator_of(n) for _, n in offered.outbox.queued] == ["a", "b"]
    accepting = await read(chats, "c")  # read while the offers are still on their way
    assert len((await db.chats.find_one({"_id": "c"}) or {})[OUTBOX]) == 2
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    try:
        notices = notices_of(db, broker)
        assert await notices.publish(offered.outbox)  # the offers' publisher removes them
        after_offers = await db.chats.find_one({"_id": "c"})
        assert after_offers is not None and after_offers[OUTBOX] == {} and "outbox_at" not in after_offers
        assigned = await chats.change(
            update(accepting, OPEN, [*notes("chat.assigned", ["a"]), *notes("chat.revoked", ["b"])], status="assigned")
        )
        assert assigned is not None
        assert [n.event for _, n in assigned.outbox.queued] == ["chat.assigned", "chat.revoked"]
        stored = await db.chats.find_one({"_id": "c"})
        assert stored is not None
        assert [n["event"] for _, n in sorted(stored[OUTBOX].items())] == ["chat.assigned", "chat.revoked"]
        assert await notices.publish(assigned.outbox)
        done = await db.chats.find_one({"_id": "c"})
        assert done is not None and done[OUTBOX] == {} and "outbox_at" not in done
    finally:
        await broker.close()


async def test_notes_published_out_of_order_leave_the_sweep_deadline_until_the_last_is_out(
    db: Database, settings: Settings
) -> None:
    chats = MongoChats(db, CLOCK)
    await db.chats.insert_one({"_id": "c", "status": "new", "offered_to": [], "offer_version": 0, OUTBOX: {}})
    chat = await read(chats, "c")
    offered = await chats.change(update(chat, NEW_ONLY, notes("chat.offered", ["a"]), offered_to=("a",)))
    assert offered is not None
    assigned = await chats.change(update(offered.chat, OPEN, notes("chat.assigned", ["a"]), status="assigned"))
    assert assigned is not None and [n.event for _, n in assigned.outbox.queued] == ["chat.assigned"]
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    try:
        notices = notices_of(db, broker)
        assert await notices.publish(assigned.outbox)  # the later change's publisher is first
        left = await db.chats.find_one({"_id": "c"})
        assert left is not None and [n["event"] for n in left[OUTBOX].values()] == ["chat.offered"]
        assert "outbox_at" in left  # the offer is still on its way: the sweep keeps watching
        assert await notices.publish(offered.outbox)
    finally:
        await broker.close()
    done = await db.chats.find_one({"_id": "c"})
    assert done is not None and done[OUTBOX] == {} and "outbox_at" not in done


async def test_the_sweep_publishes_an_outbox_0_1_left_as_a_list(db: Database, settings: Settings) -> None:
    [note] = notes("chat.offered", ["a"])
    stored_note = {"event_id": note.event_id, "event": note.event, "operator_id": note.operator_id, "data": {}}
    await db.chats.insert_one({"_id": "old", "status": "new", "outbox": [stored_note], "outbox_at": time.time() - 60})
    # Operator "a" no longer exists (no queue): their note is dropped as done, still recorded for the streams.
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    try:
        assert await notices_of(db, broker).publish_stale(older_than_seconds=5) == 1
    finally:
        await broker.close()
    chat = await db.chats.find_one({"_id": "old"})
    assert chat is not None and "outbox" not in chat and "outbox_at" not in chat
    assert await db.notifications.count_documents({"event_id": note.event_id}) == 1


async def test_channels_and_queues_are_read_again_after_the_ttl_or_an_admin_change(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = CachedRoutingSettings(db)

    async def rule() -> str | None:
        queue = await settings.queue("q")
        return queue.routing_rule if queue else None

    await db.queues.insert_one({"_id": "q", "routing_rule": "to_all"})
    assert await rule() == "to_all"
    await db.queues.update_one({"_id": "q"}, {"$set": {"routing_rule": "to_available"}})
    assert await rule() == "to_all"  # kept: every message reads it
    settings.forget()  # what the admin API of this router does on a change
    assert await rule() == "to_available"
    await db.queues.update_one({"_id": "q"}, {"$set": {"routing_rule": "to_all"}})
    # Another router's change, once the time ran out.
    monkeypatch.setattr("omni_router.adapters.mongo_settings.SETTINGS_TTL_SECONDS", 0.0)
    assert await rule() == "to_all"
    await db.queues.delete_one({"_id": "q"})
    assert await settings.queue("q") is None


async def test_a_contact_stored_before_sender_keys_is_found_and_keyed(db: Database) -> None:
    await ensure_indexes(db)
    await db.contacts.insert_one({"_id": "old", "channel_id": "ch", "external_id": "cust", "name": "Old"})
    contacts = MongoContacts(db)

    def customer(sender: str) -> Contact:
        return Contact(id=new_id(), channel_id="ch", external_id=sender, name=f"New contact Shop-{sender}")

    assert (await contacts.find_or_add(customer("cust"))).id == "old"  # not a second contact of the sender
    assert (await db.contacts.find_one({"_id": "old"}) or {})["sender_key"] == "ch:cust"
    assert (await contacts.find_or_add(customer("cust"))).id == "old"
    fresh = await contacts.find_or_add(customer("new"))
    assert (await db.contacts.find_one({"_id": fresh.id}) or {})["sender_key"] == "ch:new"
    assert await db.contacts.count_documents({}) == 2


async def test_chats_waiting_since_0_1_join_their_queues_line_at_start(db: Database) -> None:
    await db.chats.insert_many(
        [
            {"_id": "w", "status": "new", "waiting": True, "queue_id": "q"},
            {"_id": "offered", "status": "new", "waiting": False, "queue_id": "q"},
            {"_id": "in-line", "status": "new", "waiting": True, "queue_id": "q", "waiting_in": "q"},
        ]
    )
    assert await backfill_waiting_line(db) == 1
    assert sorted([c["_id"] async for c in db.chats.find({"waiting_in": "q"})]) == ["in-line", "w"]


async def test_chats_stored_before_reports_are_dated_for_them(db: Database) -> None:
    opened = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    await db.chats.insert_many(
        [
            {"_id": "open", "status": "assigned", "created_at": opened},
            {"_id": "closed", "status": "closed", "created_at": opened, "closed_at": opened + timedelta(minutes=5)},
            {"_id": "new", "status": "new", "created_at": opened, "created_ts": 1.0},
        ]
    )
    assert await backfill_report_times(db) == 2
    assert await backfill_report_times(db) == 0
    closed = await db.chats.find_one({"_id": "closed"})
    assert closed is not None and closed["created_ts"] == opened.timestamp()
    assert closed["closed_ts"] == opened.timestamp() + 300 and closed["resolution_seconds"] == 300
    still = await db.chats.find_one({"_id": "new"})
    assert still is not None and still["created_ts"] == 1.0


async def test_a_start_upgrades_once_and_a_start_with_nothing_left_reads_one_document(
    db: Database, settings: Settings
) -> None:
    """The upgrade steps look for documents without a field (`$exists: false`), which MongoDB answers from no index
    for the report times (the `created_ts` index is sparse): every chat read at every start. The first start upgrades
    and records it; a later start reads the record by `_id` and nothing else."""
    await ensure_indexes(db)
    opened = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    await db.operators.insert_one({"_id": "op", "name": "Old", "status": "online"})
    await db.chats.insert_many(
        [
            {"_id": "w", "status": "new", "waiting": True, "queue_id": "q", "created_at": opened},
            {"_id": "done", "status": "closed", "queue_id": "q", "created_at": opened, "created_ts": 1.0},
        ]
        + [{"_id": f"c{n:03d}", "status": "closed", "created_ts": 1.0} for n in range(100)]
    )
    reply = {"_id": "r", "direction": "outgoing", "published": False, "status": "queued", "created_at": opened}
    await db.messages.insert_one(reply)

    async def start() -> Writes:
        sent = Writes()
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongodb_url, tz_aware=True, event_listeners=[sent]
        )
        try:
            await upgrade(client[db.name])
        finally:
            await client.close()
        return sent

    first = await start()
    assert "find" in first.names and "update" in first.names
    operator = await db.operators.find_one({"_id": "op"})
    assert operator is not None and operator["load"] == 0 and operator["holds"] == []
    waiting = await db.chats.find_one({"_id": "w"})
    assert waiting is not None and waiting["waiting_in"] == "q" and waiting["created_ts"] == opened.timestamp()
    stored = await db.messages.find_one({"_id": "r"})
    assert stored is not None and stored["publish_due"] == opened.timestamp()

    # A chat of the old shape after the record (none is written by this version): the next start does not look.
    await db.chats.insert_one({"_id": "late", "status": "closed", "created_at": opened})
    again = await start()
    assert [n for n in again.names if n != "endSessions"] == ["find"] and again.reads == [(UPGRADES, {"_id": "data"})]
    late = await db.chats.find_one({"_id": "late"})
    assert late is not None and "created_ts" not in late

    # The record removed (an operator's way to upgrade again): the next start upgrades.
    await db[UPGRADES].delete_one({"_id": "data"})
    await start()
    late = await db.chats.find_one({"_id": "late"})
    assert late is not None and late["created_ts"] == opened.timestamp()


async def test_renaming_a_contact_writes_only_its_chats_that_do_not_carry_the_name(
    db: Database, settings: Settings
) -> None:
    await ensure_indexes(db)
    await db.chats.insert_many(
        [
            {"_id": "named", "contact_id": "k", "contact_name": "Ann Customer", "status": "closed"},
            {"_id": "stale", "contact_id": "k", "contact_name": "New contact", "status": "new"},
            {"_id": "other", "contact_id": "j", "contact_name": "New contact", "status": "new"},
        ]
    )
    writes = Writes()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, event_listeners=[writes])
    try:
        await MongoChats(client[db.name], CLOCK).rename_contact("k", "Ann Customer")
    finally:
        await client.close()

    assert writes.on("chats") == [{"_id": "stale"}]
    names = {doc["_id"]: doc["contact_name"] async for doc in db.chats.find({})}
    assert names == {"named": "Ann Customer", "stale": "Ann Customer", "other": "New contact"}
