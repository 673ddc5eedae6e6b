"""What happens because time passed, driven by times stored on the chats and replies. Every router runs these;
the compare-and-set writes make sure each offer is moved and each chat closed once, and a restarted router picks
up where the stored times say."""

import logging

from omni_router.service_layer.capacity import Capacity
from omni_router.service_layer.courtesy import Courtesy
from omni_router.service_layer.engine import Engine
from omni_router.service_layer.notices import Notices

log = logging.getLogger(__name__)

# A chat's outbox is normally published within milliseconds of its change; the sweep leaves it this long before
# publishing it itself, so that it does not publish a second time what is on its way.
OUTBOX_GRACE_SECONDS = 5.0


async def sweep_routing(engine: Engine, notices: Notices, every_seconds: float) -> None:
    """Offers past their timeout move on, offers to operators gone offline move on, waiting chats are offered to
    whoever can take them now, and notifications a failure left behind are published."""
    await engine.expire_offers()
    await engine.withdraw_from_offline()
    await engine.dispatch_all()
    await notices.publish_stale(older_than_seconds=max(every_seconds, OUTBOX_GRACE_SECONDS))


async def sweep_completion(engine: Engine, capacity: Capacity, courtesy: Courtesy, every_seconds: float) -> None:
    """Chats past their completion timeout are closed; capacity units no chat uses are given back; CSAT questions a
    crash left unsent are sent."""
    closed = await engine.close_due()
    await courtesy.ask_due(older_than_seconds=max(every_seconds, OUTBOX_GRACE_SECONDS))
    if closed:
        log.info("closed idle chats", extra={"count": closed})
    await engine.after_release(await capacity.repair(grace_seconds=max(every_seconds, 10.0)))
