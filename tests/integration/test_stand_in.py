"""Where the nx-27017 stand-in differs from MongoDB in what it stores, and so where an adapter's write has the shape
it has. Each difference is asserted on the stand-in and its absence on MongoDB (the containers' run): a stand-in
that changes shows up here, not as a routing bug. (Two more live beside the adapters they shaped: the TTL purge in
test_idempotency_keys.py, the refused index with `_id` in test_notifications.py.)"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import ASCENDING, IndexModel
from pymongo.errors import OperationFailure

from omni_runtime.database import Database
from omni_runtime.files import FileStore
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_a_datetime_given_to_set_is_stored_as_a_string(db: Database, infra: Infra) -> None:
    """Why due times and offer deadlines are epoch seconds, and why adapters read stored times leniently."""
    await db.probe.insert_one({"_id": 1, "inserted": MOMENT})
    await db.probe.update_one({"_id": 1}, {"$set": {"set": MOMENT, "number": MOMENT.timestamp()}})
    stored = await db.probe.find_one({"_id": 1})
    assert stored is not None and stored["inserted"] == MOMENT and stored["number"] == MOMENT.timestamp()
    if infra.kind == "local":
        assert isinstance(stored["set"], str)
        assert await db.probe.count_documents({"set": {"$lte": MOMENT}}) == 0
    else:
        assert stored["set"] == MOMENT
    assert await db.probe.count_documents({"number": {"$lte": MOMENT.timestamp()}}) == 1


async def test_max_on_a_date_is_ignored(db: Database, infra: Infra) -> None:
    """Why a chat's `last_message_at` is moved with `$set` (its `active_at` and `due_at`, numbers, with `$max`)."""
    later = MOMENT + timedelta(minutes=1)
    await db.probe.insert_one({"_id": 1, "at": MOMENT, "seconds": MOMENT.timestamp()})
    await db.probe.update_one({"_id": 1}, {"$max": {"at": later, "seconds": later.timestamp()}})
    stored = await db.probe.find_one({"_id": 1})
    assert stored is not None and stored["seconds"] == later.timestamp()
    if infra.kind == "local":
        assert stored["at"] == MOMENT
    else:
        assert stored["at"] == later


async def test_an_array_item_set_by_its_number_is_ignored_and_by_the_positional_operator_is_not(
    db: Database, infra: Infra
) -> None:
    """Why stored attachments carry their `index` and are updated through `attachments.$`."""
    await db.probe.insert_one(
        {"_id": 1, "attachments": [{"index": 0, "status": "pending"}, {"index": 1, "status": "pending"}]}
    )
    await db.probe.update_one({"_id": 1}, {"$set": {"attachments.0.status": "by-number"}})
    await db.probe.update_one({"_id": 1, "attachments.index": 1}, {"$set": {"attachments.$.status": "positional"}})
    stored = await db.probe.find_one({"_id": 1})
    assert stored is not None
    assert stored["attachments"][1]["status"] == "positional"
    assert stored["attachments"][0]["status"] == ("pending" if infra.kind == "local" else "by-number")


async def test_an_index_on_an_array_field_finds_nothing_by_an_element(db: Database, infra: Infra) -> None:
    """Why the search keeps postings of its own ("<word> <entry id>", one indexed string, read as one range) rather
    than an array of words under an index, why no chat index is on the arrays `offered_to` or `labels` alone, and
    why search does not use a text index (nx-27017 has no `$text`)."""
    await db.probe.create_index("words")
    await db.probe.insert_one({"_id": 1, "words": ["parcel", "late"]})
    await db.probe.create_index("key")
    await db.probe.insert_one({"_id": 2, "key": "parcel 0001"})
    assert len(await db.probe.find({"key": {"$gt": "parcel ", "$lt": "parcel!"}}).to_list()) == 1
    found = await db.probe.find({"words": "parcel"}).to_list()  # (a count reads it without the index, and finds it)
    assert len(found) == (0 if infra.kind == "local" else 1)


async def test_reading_the_gridfs_collections_before_the_first_file_breaks_gridfs(db: Database, infra: Infra) -> None:
    """Why tests read stored files through GridFS, never `fs.files` as a collection (tests/e2e/test_operator_files.py):
    on the stand-in, a query on `fs.files` before GridFS made its tables makes an ordinary collection of that name,
    and storing a file then fails."""

    async def one() -> AsyncIterator[bytes]:
        yield b"hello"

    assert await db["fs.files"].count_documents({}) == 0
    if infra.kind == "local":
        with pytest.raises(OperationFailure):
            await FileStore(db).put("notes.txt", "text/plain", one(), 100)
    else:
        assert (await FileStore(db).put("notes.txt", "text/plain", one(), 100)).size == 5


async def test_an_index_on_a_field_of_array_items_hides_the_documents_from_lookups(db: Database, infra: Infra) -> None:
    """Why messages have no index on `attachments.file_id` (a file's message is found by reading them): on the
    stand-in, such an index makes equality lookups on that field find nothing; MongoDB's multikey index finds it."""
    await db.probe.create_indexes([IndexModel([("attachments.file_id", ASCENDING)], sparse=True)])
    await db.probe.insert_one({"_id": 1, "attachments": [{"file_id": "f1"}, {"url": "u"}]})
    found = await db.probe.find_one({"attachments.file_id": "f1"})
    if infra.kind == "local":
        assert found is None
    else:
        assert found is not None and found["_id"] == 1


async def test_percentile_and_median_are_dropped_and_to_date_refused_in_aggregation(db: Database, infra: Infra) -> None:
    """Why reports take percentiles by nearest rank with `$sort` / `$skip` / `$limit` after a count, and group days
    by `$floor` of epoch seconds (adapters/mongo_reports.py): both work on the stand-in and on MongoDB. The stand-in
    answers a `$group` with `$percentile` or `$median` without that field (silently), and refuses `$toDate`."""
    await db.probe.insert_many([{"_id": n, "ts": 86400.0 * (n % 3), "v": float(n)} for n in range(10)])
    ranked = await (
        await db.probe.aggregate([{"$match": {"v": {"$gte": 0}}}, {"$sort": {"v": 1}}, {"$skip": 8}, {"$limit": 1}])
    ).to_list()
    assert [d["v"] for d in ranked] == [8.0]
    days = await (
        await db.probe.aggregate(
            [{"$group": {"_id": {"$floor": {"$divide": ["$ts", 86400]}}, "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
        )
    ).to_list()
    assert [(d["_id"], d["n"]) for d in days] == [(0, 4), (1, 3), (2, 3)]
    for accumulator in (
        {"$percentile": {"input": "$v", "p": [0.5], "method": "approximate"}},
        {"$median": {"input": "$v", "method": "approximate"}},
    ):
        [grouped] = await (await db.probe.aggregate([{"$group": {"_id": None, "p": accumulator}}])).to_list()
        assert ("p" not in grouped) if infra.kind == "local" else grouped["p"] in ([4.0], 4.0)
    as_date = [{"$project": {"d": {"$toDate": {"$multiply": ["$ts", 1000]}}}}]
    if infra.kind == "local":
        with pytest.raises(OperationFailure):
            await (await db.probe.aggregate(as_date)).to_list()
    else:
        assert len(await (await db.probe.aggregate(as_date)).to_list()) == 10


async def test_exists_on_a_sparse_index_reads_every_document(db: Database, infra: Infra) -> None:
    """Why the dispatch sweep finds the waiting lines with `{"waiting_in": {"$gt": ""}}` (mongo_chats.WAITING), not
    `$exists`: MongoDB answers both from the sparse index; the stand-in scans the collection for `$exists` (under
    its one lock, as long as there are chats) and searches the index for the range."""
    await db.probe.create_indexes([IndexModel([("waiting_in", ASCENDING)], sparse=True)])
    await db.probe.insert_many([{"_id": n, **({"waiting_in": "q1"} if n % 50 == 0 else {})} for n in range(200)])

    async def plan(query: dict[str, object]) -> str:
        explained = await db.command({"explain": {"find": "probe", "filter": query}})
        return str(explained["queryPlanner"]["winningPlan"])

    exists, ranged = await plan({"waiting_in": {"$exists": True}}), await plan({"waiting_in": {"$gt": ""}})
    assert await db.probe.count_documents({"waiting_in": {"$gt": ""}}) == 4
    if infra.kind == "local":
        assert "SCAN probe" in exists and "USING INDEX" not in exists
        assert "SEARCH probe USING INDEX" in ranged
    else:
        assert "IXSCAN" in exists and "IXSCAN" in ranged
