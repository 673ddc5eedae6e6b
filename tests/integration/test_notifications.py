"""The stored notifications behind `GET /api/events`: one record per notification, retention, and the hub
handing each note once to its operator's streams, also one committed out of id order."""

import time

import pytest
from pymongo import ASCENDING, IndexModel

from omni_contracts import ChatNotification
from omni_router.adapters.clock import SystemClock
from omni_router.adapters.notification_log import MongoNotificationLog
from omni_router.service_layer.ports import StoredNotification
from omni_router.service_layer.streams import BACKLOG, Hub, Position, stored_after
from omni_router.service_layer.streams import prune as prune_log
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.ids import lowest_id_at, new_id
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


def _note(operator_id: str, chat_id: str = "c1") -> ChatNotification:
    return ChatNotification(event="chat.offered", chat_id=chat_id, operator_id=operator_id)


def _doc(id_: str, operator_id: str) -> Document:
    return {"_id": id_, "operator_id": operator_id, "event": "chat.offered", "event_id": id_, "body": "{}"}


def _stored(doc: Document) -> StoredNotification:
    return StoredNotification(doc["_id"], doc["operator_id"], doc["event"], doc["body"])


async def record(db: Database, notes: list[ChatNotification]) -> None:
    await MongoNotificationLog(db).record(notes)


async def prune(db: Database, retention_hours: float) -> int:
    return await prune_log(MongoNotificationLog(db), SystemClock(), retention_hours)


def _hub(db: Database) -> Hub:
    return Hub(MongoNotificationLog(db), SystemClock())


def _id_at(seconds: float) -> str:
    return lowest_id_at(seconds)[:16] + "0000abcd"


async def test_a_note_published_again_is_recorded_once_with_the_queue_json(db: Database) -> None:
    await ensure_indexes(db)
    note, other = _note("op-1"), _note("op-2")
    await record(db, [note])
    await record(db, [note, other])  # the outbox sweep publishing the first again, with one more
    stored = await db.notifications.find({}).sort("_id", 1).to_list()
    assert [(d["operator_id"], d["body"]) for d in stored] == [
        ("op-1", note.model_dump_json()),
        ("op-2", other.model_dump_json()),
    ]
    assert stored[0]["event"] == "chat.offered" and stored[1]["_id"] < new_id()


async def test_prune_deletes_only_what_is_past_the_retention(db: Database) -> None:
    now = time.time()
    ages = {"old": 73, "young": 71, "new": 0}
    await db.notifications.insert_many([_doc(_id_at(now - h * 3600), name) for name, h in ages.items()])
    assert await prune(db, retention_hours=72) == 1
    assert sorted(d["operator_id"] for d in await db.notifications.find({}).to_list()) == ["new", "young"]


async def test_hub_hands_each_note_once_to_its_operator_also_one_committed_late(db: Database) -> None:
    await ensure_indexes(db)
    hub = _hub(db)
    now = time.time()
    earlier, later = _id_at(now - 0.5), _id_at(now - 0.1)
    position = Position(_id_at(now - 1.0), hub.log)
    async with hub.subscribe("op-1") as mine, hub.subscribe("op-2") as theirs:
        await db.notifications.insert_one(_doc(later, "op-1"))
        await hub.poll()
        await db.notifications.insert_one(_doc(earlier, "op-1"))  # made first, committed second
        await db.notifications.insert_one(_doc(_id_at(now - 0.2), "op-2"))
        await hub.poll()
        await hub.poll()  # reading the recent window again hands nothing twice
        handed = [mine.queue.get_nowait().id for _ in range(mine.queue.qsize())]
        assert handed == [later, earlier]
        assert theirs.queue.qsize() == 1 and not mine.behind

    assert [position.take(_stored(d)) for d in [_doc(later, "op-1"), _doc(earlier, "op-1")]] == [True, True]
    assert position.last == later  # the late one does not move the stream back
    replayed = [d async for d in stored_after(hub.log, "op-1", position.start)]
    assert [d.id for d in replayed] == [earlier, later]
    assert not any(position.take(d) for d in replayed)  # replay and live overlap: nothing twice


async def test_a_stream_too_far_behind_is_marked_to_catch_up_from_the_database(db: Database) -> None:
    hub = _hub(db)
    base = time.time_ns()
    ids = [f"{base + n:016x}0000abcd" for n in range(BACKLOG + 1)]
    await db.notifications.insert_many([_doc(id_, "op-1") for id_ in ids])
    async with hub.subscribe("op-1") as feed:
        await hub.poll()
        assert feed.behind and feed.queue.full()
    position = Position(ids[0], hub.log)
    position.take(_stored(_doc(ids[-1], "op-1")))
    assert ids[0] <= position.catch_up_from() < ids[-1]


async def test_the_stand_in_refuses_inserts_under_an_index_with_id(db: Database, infra: Infra) -> None:
    """Why notifications are indexed by operator only: (operator_id, _id) would serve replay best."""
    await db.probe.create_indexes([IndexModel([("operator_id", ASCENDING), ("_id", ASCENDING)])])
    if infra.kind == "local":
        with pytest.raises(Exception, match="JSON path error near '_id'"):
            await db.probe.insert_one({"_id": "x", "operator_id": "op-1"})
    else:
        await db.probe.insert_one({"_id": "x", "operator_id": "op-1"})
        assert await db.probe.count_documents({"operator_id": "op-1", "_id": {"$gt": ""}}) == 1
