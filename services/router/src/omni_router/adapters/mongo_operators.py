"""Operators in MongoDB (`operators`), with their capacity: `load` (units in use), `holds` (the chats holding
them) and `hold_at` (when each was taken). A claim checks and takes a unit in one `find_one_and_update`, so
routers running side by side can never overfill an operator."""

from collections.abc import Sequence

from omni_router.adapters.documents import Database, Document, moment, stored
from omni_router.domain.capacity import Holdings
from omni_router.domain.model import Operator


def operator_from_document(doc: Document) -> Operator:
    return Operator(
        id=doc["_id"],
        name=doc.get("name", ""),
        role=doc.get("role", "operator"),
        status=doc.get("status", "offline"),
        max_chats=doc.get("max_chats"),
        load=int(doc.get("load") or 0),
        holds=tuple(doc.get("holds") or ()),
        hold_at=dict(doc.get("hold_at") or {}),
        last_routed_at=doc.get("last_routed_at"),
        token_hash=doc.get("token_hash"),
        created_at=moment(doc.get("created_at")),
    )


def operator_document(operator: Operator) -> Document:
    return {
        "_id": operator.id,
        "name": operator.name,
        "max_chats": operator.max_chats,
        "role": operator.role,
        "status": operator.status,
        "token_hash": operator.token_hash,
        "load": operator.load,
        "holds": list(operator.holds),
        "hold_at": dict(operator.hold_at),
        "created_at": operator.created_at,
    }


class MongoOperators:
    def __init__(self, db: Database) -> None:
        self._operators = db.operators

    async def get(self, operator_id: str) -> Operator | None:
        doc = await self._operators.find_one({"_id": operator_id})
        return operator_from_document(doc) if doc else None

    async def by_token(self, token_hash: str) -> Operator | None:
        doc = await self._operators.find_one({"token_hash": token_hash})
        return operator_from_document(doc) if doc else None

    async def exists(self, operator_id: str) -> bool:
        return await self._operators.count_documents({"_id": operator_id}) > 0

    async def many(self, operator_ids: Sequence[str]) -> list[Operator]:
        return [operator_from_document(doc) async for doc in self._operators.find({"_id": {"$in": list(operator_ids)}})]

    async def offline_ids(self) -> list[str]:
        return [doc["_id"] async for doc in self._operators.find({"status": "offline"}, {"_id": 1})]

    async def set_status(self, operator_id: str, status: str) -> None:
        await self._operators.update_one({"_id": operator_id}, {"$set": {"status": status}})

    async def take_unit(self, operator_id: str, chat_id: str, *, load: int, online_only: bool, at: float) -> bool:
        query: Document = {"_id": operator_id, "load": load, "max_chats": {"$gt": load}, "holds": {"$nin": [chat_id]}}
        if online_only:
            query["status"] = "online"
        taken = await self._operators.find_one_and_update(
            query,
            {
                "$inc": {"load": 1},
                "$push": {"holds": chat_id},
                "$set": {f"hold_at.{chat_id}": at, "last_routed_at": at},
            },
            {"_id": 1},
        )
        return taken is not None

    async def record_unit(self, operator_id: str, chat_id: str, at: float) -> bool:
        taken = await self._operators.find_one_and_update(
            {"_id": operator_id, "holds": {"$nin": [chat_id]}},
            {"$inc": {"load": 1}, "$push": {"holds": chat_id}, "$set": {f"hold_at.{chat_id}": at}},
            {"_id": 1},
        )
        return taken is not None

    async def release_unit(self, operator_id: str, chat_id: str) -> bool:
        released = await self._operators.find_one_and_update(
            {"_id": operator_id, "holds": chat_id},
            {"$inc": {"load": -1}, "$pull": {"holds": chat_id}, "$unset": {f"hold_at.{chat_id}": ""}},
            {"_id": 1},
        )
        return released is not None

    async def holds(self, operator_id: str, chat_id: str) -> bool:
        return await self._operators.count_documents({"_id": operator_id, "holds": chat_id}) > 0

    async def holdings(self) -> list[Holdings]:
        return [
            Holdings(doc["_id"], tuple(doc.get("holds") or ()), dict(doc.get("hold_at") or {}))
            async for doc in self._operators.find({}, {"holds": 1, "hold_at": 1})
        ]

    async def all(self, limit: int) -> list[Operator]:
        return [operator_from_document(d) for d in await self._operators.find({}).sort("_id", 1).limit(limit).to_list()]

    async def add(self, operator: Operator) -> None:
        await self._operators.insert_one(operator_document(operator))

    async def save(self, operator: Operator, fields: Sequence[str]) -> None:
        await self._operators.update_one(
            {"_id": operator.id}, {"$set": {f: stored(getattr(operator, f)) for f in fields}}
        )

    async def delete(self, operator_id: str) -> None:
        await self._operators.delete_one({"_id": operator_id})
