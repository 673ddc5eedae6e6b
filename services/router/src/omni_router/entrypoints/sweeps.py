"""The router's timers: each job runs every so many seconds until the router stops."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(seconds: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `job` every `seconds` until cancelled; a failing run is logged and the next one tries again."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("sweep failed; the next one retries", extra={"sweep": what})
