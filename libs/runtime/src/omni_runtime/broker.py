"""The broker connection: a robust aio-pika connection, confirmed mandatory publishes, topology declaration."""

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import uuid4

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from omni_contracts import Event
from omni_runtime.errors import BrokerUnavailable
from omni_runtime.topology import (
    CONSUMER_QUEUES,
    EVENTS_EXCHANGE,
    EXCHANGES,
    QueueDef,
    amqp_arguments,
)

log = logging.getLogger(__name__)

Headers = Mapping[str, Any]


class Broker:
    """One robust connection per process; one confirming channel for publishing."""

    def __init__(self, url: str, *, publish_timeout: float = 5.0, retry_delays_ms: Iterable[int] = ()) -> None:
        self._url = url
        self._publish_timeout = publish_timeout
        self._retry_delays_ms = tuple(retry_delays_ms)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    @retry(
        retry=retry_if_exception_type((ConnectionError, OSError)),
        wait=wait_exponential(multiplier=0.2, max=3),
        stop=stop_after_delay(30),
        reraise=True,
    )
    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url, reconnect_interval=1.0)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        assert isinstance(channel, AbstractRobustChannel)
        self._channel = channel
        await self.declare_topology(channel)

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

    async def declare_topology(self, channel: AbstractChannel) -> None:
        for exchange in EXCHANGES:
            self._exchanges[exchange.name] = await channel.declare_exchange(exchange.name, exchange.kind, durable=True)
        for queue in CONSUMER_QUEUES:
            await self.declare_queue(queue, channel)
            await self.declare_queue(queue.parking_lot, channel)
            for delay in self._retry_delays_ms:
                await self.declare_queue(queue.wait_queue(delay), channel)

    async def declare_queue(self, queue: QueueDef, channel: AbstractChannel | None = None) -> AbstractQueue:
        channel = channel or self._publishing_channel()
        declared = await channel.declare_queue(queue.name, durable=True, arguments=amqp_arguments(queue.arguments))
        for exchange, key in queue.bindings:
            await declared.bind(exchange, key)
        return declared

    async def delete_queue(self, name: str) -> None:
        await self._publishing_channel().queue_delete(name)

    async def publish_event(self, event: Event) -> None:
        """Publish on `omni.events` with the event's kind as routing key."""
        kind = getattr(event, "kind", None)
        if not isinstance(kind, str):
            raise TypeError(f"{type(event).__name__} has no kind")
        await self.publish(EVENTS_EXCHANGE, kind, event.model_dump_json().encode(), message_id=event.event_id)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Headers | None = None,
        message_id: str | None = None,
    ) -> None:
        """Publish persistently and wait for the broker's confirm; unroutable or unconfirmed raises."""
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(headers or {}),
            message_id=message_id or uuid4().hex,
        )
        try:
            target = self._exchange(exchange)
            async with asyncio.timeout(self._publish_timeout):
                await target.publish(message, routing_key, mandatory=True)
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
