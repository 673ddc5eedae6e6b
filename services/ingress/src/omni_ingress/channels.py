"""Finding the channel a webhook is for, with a short cache so intake does not hit the database per request."""

import logging
import time
from typing import Any

from pymongo.errors import PyMongoError

from omni_providers import Channel
from omni_runtime.database import Database

log = logging.getLogger(__name__)


class ChannelDirectory:
    """The ChannelLookup of ingress; only active channels are found. Cached for `ttl_seconds`, and for as long
    as the database is unreachable: intake keeps queueing for the channels it knows through a database outage."""

    def __init__(self, db: Database, ttl_seconds: float = 5.0) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._cache: dict[tuple[str, ...], tuple[float, Channel]] = {}

    async def by_source(self, provider: str, source: str) -> Channel | None:
        return await self._one(("source", provider, source), {"provider": provider, "source": source})

    async def by_id(self, provider: str, channel_id: str) -> Channel | None:
        return await self._one(("id", provider, channel_id), {"_id": channel_id, "provider": provider})

    async def of_provider(self, provider: str) -> list[Channel]:
        docs = self._db.channels.find({"provider": provider})
        return [Channel.from_document(doc) async for doc in docs if doc.get("is_active", True)]

    async def _one(self, key: tuple[str, ...], query: dict[str, Any]) -> Channel | None:
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        try:
            doc = await self._db.channels.find_one(query)
        except PyMongoError:
            if cached is None:
                raise
            log.warning("database unreachable: using the channel as last read", extra={"channel_id": cached[1].id})
            self._cache[key] = (now, cached[1])  # the next lookups skip the wait for the database
            return cached[1]
        if doc is None or not doc.get("is_active", True):
            self._cache.pop(key, None)
            return None
        channel = Channel.from_document(doc)
        self._cache[key] = (now, channel)
        return channel
