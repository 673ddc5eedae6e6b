"""The router's input partitions: spread over the running router processes, and leftovers moved home.

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

import aio_pika
import aiormq

from omni_contracts import MessageReceived
from omni_runtime.broker import Broker, delete_idle_queue
from omni_runtime.consumer import Consumer
from omni_runtime.database import Database
from omni_runtime.topology import ROUTER_INBOX, QueueDef, Topology, chat_key

log = logging.getLogger(__name__)

INSTANCES = "router_instances"
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
        self, db: Database, broker: Broker, instance: str, consumers: Sequence[Consumer[Any]], heartbeat: float
    ) -> None:
        self._db = db
        self._broker = broker
        self._instance = instance
        self._consumers = list(consumers)
        self._heartbeat = heartbeat
        self._seen = [0] * len(self._consumers)
        self._yielded_at = [0.0] * len(self._consumers)
        self.yields = 0

    async def beat(self) -> list[str]:
        """Say this router is alive; answers the live routers."""
        now = time.time()
        await self._db[INSTANCES].update_one({"_id": self._instance}, {"$set": {"seen_at": now}}, upsert=True)
        since = now - self._heartbeat * MISSED_HEARTBEATS
        return [doc["_id"] async for doc in self._db[INSTANCES].find({"seen_at": {"$gt": since}}, {"_id": 1})]

    async def run(self) -> None:
        await self._db[INSTANCES].delete_many({"seen_at": {"$lt": time.time() - FORGET_AFTER_SECONDS}})
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
        await self._db[INSTANCES].delete_one({"_id": self._instance})


async def leftover_inboxes(amqp_url: str, topology: Topology, limit: int = 256) -> list[str]:
    """Router input queues this layout does not consume but the broker still has, and which still hold messages
    (themselves or their wait queues): `router.received` of the versions before partitions, and partitions past
    ROUTER_PARTITIONS (it was larger). Empty ones are deleted (their parking lots are left alone)."""
    found: list[str] = []
    connection = await aio_pika.connect(amqp_url)
    try:
        names = [ROUTER_INBOX, *(f"{ROUTER_INBOX}.{n}" for n in range(topology.partitions, limit))]
        for name in names:
            depth = await _depth(connection, name)
            if depth is None:
                if name != ROUTER_INBOX:
                    break  # partitions are numbered without gaps
                continue
            waits = [QueueDef(name).wait_queue(delay).name for delay in topology.retry_delays_ms]
            waiting = [await _depth(connection, wait) for wait in waits]
            if depth or any(waiting):
                found.append(name)
                continue
            if await delete_idle_queue(amqp_url, name):
                for wait in waits:
                    await delete_idle_queue(amqp_url, wait)
                log.info("deleted an empty leftover input queue", extra={"queue": name})
            else:  # a message or a consumer came meanwhile: it is consumed now, deleted at a later start
                found.append(name)
    finally:
        await connection.close()
    return found


async def _depth(connection: aio_pika.abc.AbstractConnection, name: str) -> int | None:
    """Messages ready in queue `name`, or None when there is no such queue."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(name, passive=True)
        return int(declared.declaration_result.message_count or 0)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


def chat_of(event: MessageReceived) -> str:
    """The order key of the router's input: one chat's messages are handled one at a time, in order."""
    return chat_key(event.message.channel_id, event.message.sender)


def leftover_queue(name: str) -> QueueDef:
    """A leftover queue, named only: it is consumed as it was declared (passively), never declared anew."""
    return QueueDef(name)


async def move_home(event: MessageReceived, broker: Broker) -> None:
    """A received message from a leftover queue, published again into the partition it belongs to now."""
    await broker.publish_event(event)
