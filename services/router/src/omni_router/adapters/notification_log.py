"""The notification log in MongoDB (`notifications`): every operator notification as published, for the live
streams to replay and tail. Positions are the records' ids, which sort by the time they were made."""

from collections.abc import Sequence

from pymongo.errors import BulkWriteError

from omni_contracts import ChatNotification
from omni_router.adapters.documents import Database, Document
from omni_router.service_layer.ports import StoredNotification
from omni_runtime.ids import lowest_id_at, new_id, time_of

DUPLICATE_KEY = 11000


def _stored(doc: Document) -> StoredNotification:
    return StoredNotification(doc["_id"], doc["operator_id"], doc["event"], doc["body"])


class MongoNotificationLog:
    def __init__(self, db: Database) -> None:
        self._notifications = db.notifications

    async def record(self, notes: Sequence[ChatNotification]) -> None:
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
            await self._notifications.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # the unique `event_id`: a note published again keeps its first record
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    async def after(self, operator_id: str, position: str, limit: int) -> list[StoredNotification]:
        query = {"operator_id": operator_id, "_id": {"$gt": position}}
        return [_stored(doc) for doc in await self._notifications.find(query).sort("_id", 1).limit(limit).to_list()]

    async def recent(self, operator_ids: Sequence[str], position: str) -> list[StoredNotification]:
        query = {"_id": {"$gt": position}, "operator_id": {"$in": list(operator_ids)}}
        return [_stored(doc) async for doc in self._notifications.find(query).sort("_id", 1)]

    async def prune(self, position: str) -> int:
        result = await self._notifications.delete_many({"_id": {"$lt": position}})
        return result.deleted_count

    def position_at(self, seconds: float) -> str:
        return lowest_id_at(seconds)

    def time_of(self, position: str) -> float:
        return time_of(position)
