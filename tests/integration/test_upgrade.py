"""A broker an older version used: its classic queues become quorum queues when empty, stop the start with the
reason when they hold messages, and what waits in the router's old input (or in partitions past
ROUTER_PARTITIONS) is moved into the partitions and stored."""

from datetime import UTC, datetime
from urllib.parse import quote

import aio_pika
import aiormq
import pytest

from omni_contracts import MessageReceived, UnifiedMessage
from omni_runtime.broker import Broker
from omni_runtime.database import Database
from omni_runtime.errors import TopologyConflict
from omni_runtime.service import topology_of
from omni_runtime.settings import Settings
from omni_runtime.topology import EVENTS_EXCHANGE, Topology, amqp_arguments
from tests.support.infra import Infra
from tests.support.seed import seed_desk
from tests.support.stack import OperatorInbox, Stack, eventually

pytestmark = pytest.mark.integration


async def classic_queue(settings: Settings, name: str, *bodies: bytes, binding: str | None = None) -> None:
    """A queue as version 0.1 declared it (classic, durable, no arguments), holding `bodies`."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(name, durable=True)
        if binding is not None:
            exchange = await channel.declare_exchange(EVENTS_EXCHANGE, "topic", durable=True)
            await queue.bind(exchange, binding)
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body, delivery_mode=2), name)
    finally:
        await connection.close()


def queue_type(infra: Infra, vhost: str, name: str) -> str:
    with infra.management() as client:
        return str(client.get(f"/api/queues/{quote(vhost, safe='')}/{name}").json()["type"])


async def test_an_empty_classic_queue_is_replaced_by_a_quorum_queue(
    settings: Settings, infra: Infra, vhost: str
) -> None:
    await classic_queue(settings, "dispatcher.outgoing")
    assert queue_type(infra, vhost, "dispatcher.outgoing") == "classic"
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    await broker.close()
    assert queue_type(infra, vhost, "dispatcher.outgoing") == "quorum"


async def test_a_classic_queue_holding_messages_stops_the_start_and_keeps_them(settings: Settings) -> None:
    await classic_queue(settings, "router.updates", b'{"kind": "message.sent"}', b'{"kind": "message.sent"}')
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    with pytest.raises(TopologyConflict) as refused:
        await broker.connect()
    print("refused:", refused.value)
    assert "queue router.updates exists with other arguments" in str(refused.value)
    assert "2 messages in router.updates" in str(refused.value) and "delete_queue router.updates" in str(refused.value)
    async with OperatorInbox(settings.amqp_url) as inbox:
        assert await inbox.queue_length("router.updates") == 2


async def test_the_old_router_input_and_surplus_partitions_are_moved_home(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("router")
    desk = await seed_desk(stack, operators=1)
    await stack.stop("router")

    def received(n: int) -> bytes:
        message = UnifiedMessage(
            provider=desk.provider,
            channel_id=desk.channel_id,
            provider_message_id=f"old-{n}",
            sender=f"cust-{n % 2}",
            recipient=desk.source,
            sent_at=datetime.now(UTC),
            text=f"old #{n}",
        )
        return MessageReceived(message=message).model_dump_json().encode()

    # What version 0.1 left in its single input queue, and a partition of a layout with nine partitions.
    await classic_queue(settings, "router.received", *(received(n) for n in range(3)), binding="message.received")
    surplus = Topology(partitions=9, delivery_limit=settings.delivery_limit).stale_partition(8)
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(surplus.parking_lot.name, durable=True)
        await channel.declare_queue(surplus.name, durable=True, arguments=amqp_arguments(surplus.arguments))
        await channel.default_exchange.publish(aio_pika.Message(received(3), delivery_mode=2), surplus.name)
    finally:
        await connection.close()

    await stack.start("router")

    async def all_routed() -> bool:
        return await db.messages.count_documents({"routed": True}) == 4

    await eventually(all_routed, timeout=20)
    texts = sorted([m["text"] async for m in db.messages.find({})])
    print("stored:", texts)
    assert texts == ["old #0", "old #1", "old #2", "old #3"]
    async with OperatorInbox(settings.amqp_url) as inbox:
        assert await inbox.queue_length("router.received") == 0
        assert await inbox.queue_length(surplus.name) == 0
    # Empty now: the next start deletes them (and their wait queues), leaving the parking lots.
    await stack.stop("router")
    await stack.start("router")
    assert await existing(settings, "router.received", surplus.name, "router.received.wait.200ms") == []
    assert await existing(settings, "router.received.8.parked") == ["router.received.8.parked"]


async def existing(settings: Settings, *names: str) -> list[str]:
    found = []
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        for name in names:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
                found.append(name)
                await channel.close()
            except aiormq.exceptions.ChannelNotFoundEntity:
                pass
    finally:
        await connection.close()
    return found
