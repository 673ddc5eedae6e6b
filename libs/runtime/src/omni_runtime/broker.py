"""The broker connection: a robust aio-pika connection, confirmed mandatory publishes, topology declaration."""

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from uuid import uuid4

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.abc import FieldTable
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from omni_contracts import Event
from omni_runtime.amqp_writes import CoalescingRobustConnection
from omni_runtime.errors import BrokerUnavailable, TopologyConflict
from omni_runtime.pipeline import Publish, PublishPipeline
from omni_runtime.topology import EVENTS_EXCHANGE, EXCHANGES, QueueDef, Topology, amqp_arguments

log = logging.getLogger(__name__)

Headers = Mapping[str, Any]
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


class Broker:
    """One robust connection per process; one confirming channel for publishing."""

    def __init__(
        self,
        url: str,
        *,
        publish_timeout: float = 5.0,
        topology: Topology | None = None,
        connection_name: str | None = None,
    ) -> None:
        self._url = url
        self._publish_timeout = publish_timeout
        self.topology = topology or Topology()
        self._connection_name = connection_name
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._pipeline = PublishPipeline()

    @retry(
        retry=retry_if_exception_type((ConnectionError, OSError)),
        wait=wait_exponential(multiplier=0.2, max=3),
        stop=stop_after_delay(30),
        reraise=True,
    )
    async def connect(self) -> None:
        await self._declare_layout()
        properties: FieldTable | None = {"connection_name": self._connection_name} if self._connection_name else None
        self._connection = await aio_pika.connect_robust(
            self._url,
            reconnect_interval=1.0,
            client_properties=properties,
            connection_class=CoalescingRobustConnection,
        )
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        assert isinstance(channel, AbstractRobustChannel)
        self._channel = channel
        for exchange in EXCHANGES:
            self._exchanges[exchange.name] = await channel.declare_exchange(exchange.name, exchange.kind, durable=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @property
    def connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BrokerUnavailable("not connected")
        return self._connection

    async def new_channel(self, prefetch: int) -> AbstractChannel:
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def _declare_layout(self) -> None:
        """Declare the whole layout on a plain connection of its own, each consumer queue with its parking lot and
        wait queues on a channel of its own, side by side (the service starts sooner).

        Not on the robust connection: a refused declaration closes its channel, which that would keep reopening.
        A consumer queue an older version declared differently (a classic queue before quorum queues, another
        delivery limit) is replaced when it is empty and unused; one still holding messages stops the start
        with TopologyConflict, saying what to do (docs/delivery.md, "Upgrading a broker from 0.1").
        """
        connection = await aio_pika.connect(self._url)
        try:
            channel = await connection.channel()
            for exchange in EXCHANGES:
                await channel.declare_exchange(exchange.name, exchange.kind, durable=True)
            await channel.close()
            await asyncio.gather(*(self._declare_family(connection, queue) for queue in self.topology.consumer_queues))
        finally:
            await connection.close()

    async def _declare_family(self, connection: aio_pika.abc.AbstractConnection, queue: QueueDef) -> None:
        channel = await connection.channel()
        await self.declare_queue(queue.parking_lot, channel)  # first: the queue dead-letters into it
        for delay in self.topology.retry_delays_ms:
            await self.declare_queue(queue.wait_queue(delay), channel)
        try:
            await self.declare_queue(queue, channel)
        except aiormq.exceptions.ChannelPreconditionFailed as refused:
            await self._replace(connection, queue, str(refused))
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _replace(self, connection: aio_pika.abc.AbstractConnection, queue: QueueDef, reason: str) -> None:
        channel = await connection.channel()
        try:
            existing = await channel.declare_queue(queue.name, passive=True)
            holding = await self._holding(connection, queue, existing.declaration_result)
            if holding:
                raise TopologyConflict(
                    f"queue {queue.name} exists with other arguments than this version declares ({reason}), "
                    f"and it is in use ({', '.join(holding)}). Let the version that declared it drain it (stop "
                    f"ingress first), then delete it (`rabbitmqctl delete_queue {queue.name}`) and start again"
                )
            if not await delete_idle_queue(self._url, queue.name):
                raise TopologyConflict(f"queue {queue.name} took a message or a consumer while being replaced")
            await self.declare_queue(queue, channel)
            log.warning("replaced an empty queue declared differently", extra={"queue": queue.name, "cause": reason})
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _holding(
        self, connection: aio_pika.abc.AbstractConnection, queue: QueueDef, declared: aiormq.spec.Queue.DeclareOk
    ) -> list[str]:
        """What keeps an existing queue from being replaced: messages in it or its wait queues, consumers."""
        held = {queue.name: int(declared.message_count or 0)}
        for delay in self.topology.retry_delays_ms:
            name = queue.wait_queue(delay).name
            held[name] = await self._depth(connection, name)
        holding = [f"{count} messages in {name}" for name, count in held.items() if count]
        if declared.consumer_count:
            holding.append(f"{declared.consumer_count} consumers")
        return holding

    @staticmethod
    async def _depth(connection: aio_pika.abc.AbstractConnection, name: str) -> int:
        """Messages in queue `name`; 0 when it does not exist."""
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(name, passive=True)
            return int(declared.declaration_result.message_count or 0)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return 0
        finally:
            if not channel.is_closed:
                await channel.close()

    async def declare_queue(self, queue: QueueDef, channel: AbstractChannel | None = None) -> AbstractQueue:
        channel = channel or self._publishing_channel()
        declared = await channel.declare_queue(queue.name, durable=True, arguments=amqp_arguments(queue.arguments))
        for exchange, key in queue.bindings:
            await declared.bind(exchange, key)
        return declared

    async def delete_queue(self, name: str) -> None:
        await self._publishing_channel().queue_delete(name)

    async def publish_event(self, event: Event) -> None:
        """Publish on `omni.events` with the event's kind as routing key (a received message's with its partition)."""
        routing_key = self.topology.routing_key(event)
        await self.publish(EVENTS_EXCHANGE, routing_key, event.model_dump_json().encode(), message_id=event.event_id)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Headers | None = None,
        message_id: str | None = None,
    ) -> None:
        """Publish persistently and wait for the broker's confirm; unroutable or unconfirmed raises.

        Pipelined (`PublishPipeline`): the publishes made during one step of the event loop go to the broker as
        one write, each still waiting for its own confirm."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._exchange(exchange)  # declared (or the default exchange), on an open channel
            async with asyncio.timeout(self._publish_timeout):
                channel = await self._publishing_channel().get_underlay_channel()
                assert isinstance(channel, aiormq.Channel)
                item = Publish(
                    exchange,
                    routing_key,
                    body,
                    "application/json",
                    PERSISTENT,
                    message_id or uuid4().hex,
                    headers or {},
                    done,
                )
                self._pipeline.publish(channel, item)
                await done
        except Exception as exc:  # every failure to confirm means the same to callers: not queued
            raise BrokerUnavailable(f"publish to {exchange or 'default'}/{routing_key} not confirmed") from exc

    def _exchange(self, name: str) -> AbstractExchange:
        if name == "":
            return self._publishing_channel().default_exchange
        try:
            return self._exchanges[name]
        except KeyError:
            raise BrokerUnavailable(f"exchange {name} not declared") from None

    def _publishing_channel(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            raise BrokerUnavailable("no open channel")
        return self._channel


async def delete_idle_queue(url: str, name: str) -> bool:
    """Delete queue `name` if it is empty and nobody consumes it; False if it is not (any more).

    Classic queues check that themselves (if-empty, if-unused); quorum queues refuse those flags by closing
    the connection (NOT_IMPLEMENTED), so for them the caller's check just before stands, and the window
    between the two is what remains.
    """
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(name, if_unused=True, if_empty=True)
        return True
    except aiormq.exceptions.ChannelPreconditionFailed:
        return False
    except aiormq.exceptions.ConnectionNotImplemented:
        pass  # a quorum queue
    finally:
        if not connection.is_closed:
            await connection.close()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(name)
        return True
    finally:
        await connection.close()
