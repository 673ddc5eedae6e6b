"""Queues and channels in MongoDB (`queues`, `channels`), and the read-through cache routing reads them by."""

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.errors import DuplicateKeyError

from omni_router.adapters.documents import Database, Document, moment, stored
from omni_router.domain.model import Channel, Queue

# How long a router keeps a channel or queue it read before reading it again: every message needs both, and they
# change seldom. The admin API of the same process forgets them at once; other routers see a change within this time.
SETTINGS_TTL_SECONDS = 2.0


def queue_from_document(doc: Document) -> Queue:
    return Queue(
        id=doc["_id"],
        name=doc.get("name", ""),
        routing_rule=doc.get("routing_rule", ""),
        operator_ids=tuple(doc.get("operator_ids") or ()),
        completion_timeout_minutes=doc.get("completion_timeout_minutes"),
        offer_timeout_seconds=doc.get("offer_timeout_seconds"),
        on_operator_offline=doc.get("on_operator_offline", "keep"),
        created_at=moment(doc.get("created_at")),
        actions=None if doc.get("actions") is None else tuple(doc["actions"]),
        business_hours=doc.get("business_hours"),
        greeting_text=doc.get("greeting_text"),
        out_of_hours_text=doc.get("out_of_hours_text"),
        csat=doc.get("csat"),
    )


def queue_document(queue: Queue) -> Document:
    return {
        "_id": queue.id,
        "name": queue.name,
        "routing_rule": queue.routing_rule,
        "completion_timeout_minutes": queue.completion_timeout_minutes,
        "operator_ids": list(queue.operator_ids),
        "on_operator_offline": queue.on_operator_offline,
        "offer_timeout_seconds": queue.offer_timeout_seconds,
        "created_at": queue.created_at,
        "actions": stored(queue.actions),
        "business_hours": stored(queue.business_hours),
        "greeting_text": queue.greeting_text,
        "out_of_hours_text": queue.out_of_hours_text,
        "csat": stored(queue.csat),
    }


def channel_from_document(doc: Document) -> Channel:
    return Channel(
        id=doc["_id"],
        name=doc.get("name", ""),
        provider=doc.get("provider", ""),
        source=doc.get("source", ""),
        queue_id=doc.get("queue_id"),
        settings=dict(doc.get("settings") or {}),
        is_active=bool(doc.get("is_active", True)),
        registration=doc.get("registration"),
        created_at=moment(doc.get("created_at")),
    )


def channel_document(channel: Channel) -> Document:
    return {
        "_id": channel.id,
        "name": channel.name,
        "provider": channel.provider,
        "source": channel.source,
        "queue_id": channel.queue_id,
        "settings": dict(channel.settings),
        "is_active": channel.is_active,
        "created_at": channel.created_at,
    }


class MongoQueues:
    def __init__(self, db: Database) -> None:
        self._queues = db.queues

    async def get(self, queue_id: str) -> Queue | None:
        doc = await self._queues.find_one({"_id": queue_id})
        return queue_from_document(doc) if doc else None

    async def all(self, limit: int) -> list[Queue]:
        return [queue_from_document(d) for d in await self._queues.find({}).sort("_id", 1).limit(limit).to_list()]

    async def of_operator(self, operator_id: str) -> list[Queue]:
        return [queue_from_document(d) async for d in self._queues.find({"operator_ids": operator_id})]

    async def ids_with_any(self, operator_ids: Sequence[str]) -> list[str]:
        return [d["_id"] async for d in self._queues.find({"operator_ids": {"$in": list(operator_ids)}}, {"_id": 1})]

    async def returning_ids(self) -> list[str]:
        return [d["_id"] async for d in self._queues.find({"on_operator_offline": "return"}, {"_id": 1})]

    async def add(self, queue: Queue) -> None:
        await self._queues.insert_one(queue_document(queue))

    async def save(self, queue: Queue, fields: Sequence[str]) -> None:
        await self._queues.update_one({"_id": queue.id}, {"$set": {f: stored(getattr(queue, f)) for f in fields}})

    async def delete(self, queue_id: str) -> None:
        await self._queues.delete_one({"_id": queue_id})

    async def drop_operator(self, operator_id: str) -> None:
        await self._queues.update_many({"operator_ids": operator_id}, {"$pull": {"operator_ids": operator_id}})


class MongoChannels:
    def __init__(self, db: Database) -> None:
        self._channels = db.channels

    async def get(self, channel_id: str) -> Channel | None:
        doc = await self._channels.find_one({"_id": channel_id})
        return channel_from_document(doc) if doc else None

    async def all(self, limit: int) -> list[Channel]:
        return [channel_from_document(d) for d in await self._channels.find({}).sort("_id", 1).limit(limit).to_list()]

    async def add(self, channel: Channel) -> bool:
        try:
            await self._channels.insert_one(channel_document(channel))
        except DuplicateKeyError:  # the unique (provider, source) index
            return False
        return True

    async def save(self, channel: Channel, fields: Sequence[str]) -> None:
        await self._channels.update_one({"_id": channel.id}, {"$set": {f: stored(getattr(channel, f)) for f in fields}})

    async def delete(self, channel_id: str) -> None:
        await self._channels.delete_one({"_id": channel_id})

    async def record_registration(
        self, channel_id: str, registration: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> None:
        changes: Document = {"registration": dict(registration)}
        for key, value in settings.items():
            changes[f"settings.{key}"] = value
        await self._channels.update_one({"_id": channel_id}, {"$set": changes})


class CachedRoutingSettings:
    """Queues and channels read at most SETTINGS_TTL_SECONDS ago (the values are frozen: nobody changes them)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._kept: dict[tuple[str, str], tuple[float, Document]] = {}

    async def _read(self, collection: str, item_id: str) -> Document | None:
        key = (collection, item_id)
        at = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and at - kept[0] < SETTINGS_TTL_SECONDS:
            return kept[1]
        doc = await self._db[collection].find_one({"_id": item_id})
        if doc is None:
            self._kept.pop(key, None)
        else:
            self._kept[key] = (at, doc)
        return doc

    async def queue(self, queue_id: str | None) -> Queue | None:
        doc = await self._read("queues", queue_id) if queue_id else None
        return queue_from_document(doc) if doc else None

    async def channel(self, channel_id: str) -> Channel | None:
        doc = await self._read("channels", channel_id)
        return channel_from_document(doc) if doc else None

    def forget(self) -> None:
        """Channels or queues changed: read them again next time."""
        self._kept.clear()
