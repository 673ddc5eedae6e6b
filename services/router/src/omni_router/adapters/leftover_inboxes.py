"""Router input queues the current layout does not consume but the broker still has: `router.received` of the
versions before partitions, and partitions past ROUTER_PARTITIONS (it was larger). Those still holding messages are
consumed as they were declared and their messages moved into the current partitions; empty ones are deleted."""

import logging

import aio_pika
import aiormq

from omni_runtime.broker import delete_idle_queue
from omni_runtime.topology import ROUTER_INBOX, QueueDef, Topology

log = logging.getLogger(__name__)


async def leftover_inboxes(amqp_url: str, topology: Topology, limit: int = 256) -> list[str]:
    """The leftover input queues that still hold messages (themselves or their wait queues). Empty ones are deleted
    (their parking lots are left alone)."""
    found: list[str] = []
    connection = await aio_pika.connect(amqp_url)
    try:
        for name in [ROUTER_INBOX, *(f"{ROUTER_INBOX}.{n}" for n in range(topology.partitions, limit))]:
            holding = await _holding(connection, amqp_url, topology, name)
            if holding is None and name != ROUTER_INBOX:
                break  # partitions are numbered without gaps
            if holding:
                found.append(name)
    finally:
        await connection.close()
    return found


async def _holding(
    connection: aio_pika.abc.AbstractConnection, amqp_url: str, topology: Topology, name: str
) -> bool | None:
    """Whether queue `name` (or one of its wait queues) still holds messages, None if there is no such queue; an
    empty one is deleted with its wait queues."""
    depth = await _depth(connection, name)
    if depth is None:
        return None
    waits = [QueueDef(name).wait_queue(delay).name for delay in topology.retry_delays_ms]
    waiting = [await _depth(connection, wait) for wait in waits]
    if depth or any(waiting):
        return True
    if not await delete_idle_queue(amqp_url, name):
        return True  # a message or a consumer came meanwhile: it is consumed now, deleted at a later start
    for wait in waits:
        await delete_idle_queue(amqp_url, wait)
    log.info("deleted an empty leftover input queue", extra={"queue": name})
    return False


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


def leftover_queue(name: str) -> QueueDef:
    """A leftover queue, named only: it is consumed as it was declared (passively), never declared anew."""
    return QueueDef(name)
