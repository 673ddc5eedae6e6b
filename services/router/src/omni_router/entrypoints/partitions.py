"""The router's input partitions, spread over the running router processes.

Every router process subscribes to every partition (`router.received.<n>`), and each partition has a
single active consumer: one process handles a partition at a time, and when it stops or dies the
broker hands the partition to the next subscriber at once, starting with what the first had not
settled. Left alone, the broker would keep every partition with the router that subscribed first.
So each process says it is alive (a heartbeat in `router_instances`) and takes a share of the
partitions: the live instance ids sorted, partition n to the (n mod live)-th. A process that is
handed traffic on a partition outside its share while other routers live (each of them waiting on
that queue) gives it up by subscribing again (which queues it behind the others). Giving up is orderly: the
consumer starts nothing new, lets the running handlers finish, and closes its channel, which hands
back what it held in delivery order.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from omni_router.service_layer.ports import RouterInstances
from omni_runtime.consumer import Consumer

log = logging.getLogger(__name__)

# A router is counted as live while its last heartbeat is younger than this many heartbeats.
MISSED_HEARTBEATS = 3
# After giving a partition up, a router keeps it (if the broker hands it back) for this many heartbeats.
YIELD_PAUSE_HEARTBEATS = 3
FORGET_AFTER_SECONDS = 3600.0


def share(live: Sequence[str], me: str, partitions: int) -> set[int]:
    """The partitions `me` should hold while `live` routers run (all of them when `me` is not among them)."""
    ordered = sorted(set(live) | {me})
    index = ordered.index(me)
    return {n for n in range(partitions) if n % len(ordered) == index}


class Spreader:
    """Keeps this router's active partitions to its share; `consumers[n]` consumes partition n."""

    def __init__(
        self, instances: RouterInstances, instance: str, consumers: Sequence[Consumer[Any]], heartbeat: float
    ) -> None:
        self._instances = instances
        self._instance = instance
        self._consumers = list(consumers)
        self._heartbeat = heartbeat
        self._seen = [0] * len(self._consumers)
        self._yielded_at = [0.0] * len(self._consumers)
        self.yields = 0

    async def beat(self) -> list[str]:
        """Say this router is alive; answers the live routers."""
        now = time.time()
        await self._instances.beat(self._instance, now)
        return await self._instances.live(now - self._heartbeat * MISSED_HEARTBEATS)

    async def run(self) -> None:
        await self._instances.forget(time.time() - FORGET_AFTER_SECONDS)
        while True:
            try:
                await self.balance(await self.beat())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the broker is away: the partitions stay as they are
                log.warning("partition heartbeat failed; the next one tries again", extra={"cause": repr(exc)})
            await asyncio.sleep(self._heartbeat)

    async def balance(self, live: list[str]) -> None:
        mine = share(live, self._instance, len(self._consumers))
        if len(set(live) | {self._instance}) < 2:
            return  # nobody to hand over to
        settled = time.monotonic() - self._heartbeat * YIELD_PAUSE_HEARTBEATS
        for number, consumer in enumerate(self._consumers):
            handed, self._seen[number] = consumer.delivered - self._seen[number], consumer.delivered
            if number in mine or not handed or self._yielded_at[number] > settled:
                continue
            # Every live router subscribes to every partition, so another one is waiting on this queue (a router
            # that died without a goodbye is counted until its heartbeats are missed; the pause keeps that cheap).
            log.info("handing a partition over", extra={"queue": consumer.queue, "live_routers": len(live)})
            await consumer.stop()
            await consumer.start()
            self._seen[number] = consumer.delivered
            self._yielded_at[number] = time.monotonic()
            self.yields += 1

    async def leave(self) -> None:
        await self._instances.leave(self._instance)
