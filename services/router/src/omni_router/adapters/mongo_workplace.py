"""Labels (`labels`, unique by name) and canned responses (`canned_responses`) in MongoDB. Canned responses are
read by one field at a time (scope, queue, operator), each with its own index: nx-27017 reads the whole
collection for `$or` and `$in` filters."""

from collections.abc import Sequence

from pymongo.errors import DuplicateKeyError

from omni_router.adapters.documents import Database, Document, moment
from omni_router.domain.canned import CannedResponse
from omni_router.domain.labels import Label

LIST_LIMIT = 1000


def label_from_document(doc: Document) -> Label:
    return Label(doc["_id"], doc.get("name", ""), doc.get("color", ""), moment(doc.get("created_at")))


def canned_from_document(doc: Document) -> CannedResponse:
    return CannedResponse(
        id=doc["_id"],
        shortcut=doc.get("shortcut", ""),
        text=doc.get("text", ""),
        queue_id=doc.get("queue_id"),
        operator_id=doc.get("operator_id"),
        created_at=moment(doc.get("created_at")),
    )


def canned_document(response: CannedResponse) -> Document:
    """`scope` is stored for the global ones' lookup; `queue_id` and `operator_id` only when set (sparse)."""
    doc: Document = {
        "_id": response.id,
        "shortcut": response.shortcut,
        "text": response.text,
        "scope": response.scope,
        "created_at": response.created_at,
    }
    if response.queue_id is not None:
        doc["queue_id"] = response.queue_id
    if response.operator_id is not None:
        doc["operator_id"] = response.operator_id
    return doc


class MongoLabels:
    def __init__(self, db: Database) -> None:
        self._labels = db.labels

    async def add(self, label: Label) -> bool:
        try:
            doc = {"_id": label.id, "name": label.name, "color": label.color, "created_at": label.created_at}
            await self._labels.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def all(self) -> list[Label]:
        return [label_from_document(d) async for d in self._labels.find().sort("name", 1).limit(LIST_LIMIT)]

    async def delete(self, label_id: str) -> Label | None:
        doc = await self._labels.find_one_and_delete({"_id": label_id})
        return label_from_document(doc) if doc else None


class MongoCannedResponses:
    def __init__(self, db: Database) -> None:
        self._canned = db.canned_responses

    async def _where(self, field: str, value: str) -> list[CannedResponse]:
        return [canned_from_document(d) async for d in self._canned.find({field: value}).limit(LIST_LIMIT)]

    async def add(self, response: CannedResponse) -> None:
        await self._canned.insert_one(canned_document(response))

    async def get(self, response_id: str) -> CannedResponse | None:
        doc = await self._canned.find_one({"_id": response_id})
        return canned_from_document(doc) if doc else None

    async def shared(self) -> list[CannedResponse]:
        return [*await self._where("scope", "global"), *await self._where("scope", "queue")]

    async def usable(self, operator_id: str, queue_ids: Sequence[str]) -> list[CannedResponse]:
        found = await self._where("scope", "global")
        for queue_id in queue_ids:
            found += await self._where("queue_id", queue_id)
        return found + await self._where("operator_id", operator_id)

    async def save(self, response: CannedResponse) -> None:
        await self._canned.replace_one({"_id": response.id}, canned_document(response))

    async def delete(self, response_id: str) -> None:
        await self._canned.delete_one({"_id": response_id})
