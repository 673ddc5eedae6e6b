"""The router's sweeps: what happens because time passed, driven by times stored on the chats.

Every router runs them; the compare-and-set writes make sure each offer is moved and each chat
closed once, and a restarted router picks up where the stored times say.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from omni_router.capacity import Capacity
from omni_router.notify import Notifier
from omni_router.offers import Offers

log = logging.getLogger(__name__)

# A chat's outbox is normally published within milliseconds of its change; the sweep leaves it this long
# before publishing it itself, so that it does not publish a second time what is on its way.
OUTBOX_GRACE_SECONDS = 5.0


async def every(seconds: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `job` every `seconds` until cancelled; a failing run is logged and the next one tries again."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("sweep failed; the next one retries", extra={"sweep": what})


async def sweep_routing(offers: Offers, notifier: Notifier, every_seconds: float) -> None:
    """Offers past their timeout move on, offers to operators gone offline move on, waiting chats are
    offered to whoever can take them now, and notifications a failure left behind are published."""
    await offers.expire_offers()
    await offers.withdraw_from_offline()
    await offers.dispatch_all()
    await notifier.deliver_stale(older_than_seconds=max(every_seconds, OUTBOX_GRACE_SECONDS))


async def sweep_completion(offers: Offers, capacity: Capacity, every_seconds: float) -> None:
    """Chats past their completion timeout are closed; capacity units no chat uses are given back."""
    closed = await offers.close_due()
    if closed:
        log.info("closed idle chats", extra={"count": closed})
    await offers.after_release(await capacity.repair(grace_seconds=max(every_seconds, 10.0)))
