"""Keeping to a messenger's rate limits by waiting, not by failing.

Each dispatcher process paces what it sends; with several processes each paces its own share,
and the messenger's 429 with Retry-After (honoured by the retry queues) covers the rest.
"""

import asyncio
import time
from collections import defaultdict


class Pacer:
    def __init__(self) -> None:
        self._next: dict[str, float] = defaultdict(float)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def wait(self, key: str, interval: float) -> None:
        """Return when the next send for `key` may go, at least `interval` seconds after the previous one."""
        if interval <= 0:
            return
        async with self._locks[key]:
            now = time.monotonic()
            start = max(now, self._next[key])
            self._next[key] = start + interval
        if start > now:
            await asyncio.sleep(start - now)
