"""Finding the channel a webhook is for, with a short cache so intake does not hit the database per request."""

import time

from omni_providers import Channel
from omni_runtime.database import Database


class ChannelDirectory:
    def __init__(self, db: Database, ttl_seconds: float = 5.0) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._cache: dict[tuple[str, str], tuple[float, Channel]] = {}

    async def by_source(self, provider: str, source: str) -> Channel | None:
        """The active channel of `provider` whose messenger-side id is `source`."""
        key = (provider, source)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        doc = await self._db.channels.find_one({"provider": provider, "source": source})
        if doc is None or not doc.get("is_active", True):
            self._cache.pop(key, None)
            return None
        channel = Channel.from_document(doc)
        self._cache[key] = (now, channel)
        return channel
