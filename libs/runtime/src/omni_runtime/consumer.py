"""Consuming with manual acks: a message is acked only after its handler's effect is durable.

A handler that raises sends the message to a wait queue (growing delays, or the other side's
Retry-After), and after the last attempt to the parking lot with the cause in its headers.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Generic, TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from omni_runtime.broker import Broker
from omni_runtime.errors import PermanentError, RetryLater
from omni_runtime.metrics import Metrics
from omni_runtime.topology import QueueDef
from omni_runtime.web import describe

log = logging.getLogger(__name__)

M = TypeVar("M")

ATTEMPT_HEADER = "x-omni-attempt"
CAUSE_HEADER = "x-omni-cause"
SOURCE_HEADER = "x-omni-source-queue"
PARKED_AT_HEADER = "x-omni-parked-at"

Handler = Callable[[M], Awaitable[None]]
ParkHook = Callable[[M | None, str], Awaitable[None]]


def choose_delay(delays_ms: Sequence[int], attempt: int, retry_after: float | None) -> int:
    """The wait before attempt `attempt + 1`: the schedule's step, or the first step covering Retry-After."""
    step = delays_ms[min(attempt - 1, len(delays_ms) - 1)]
    if retry_after is None:
        return step
    wanted = retry_after * 1000
    return next((delay for delay in delays_ms if delay >= wanted), delays_ms[-1])


class Consumer(Generic[M]):
    def __init__(
        self,
        broker: Broker,
        queue: QueueDef,
        parse: Callable[[bytes], M],
        handler: Handler[M],
        *,
        delays_ms: Sequence[int],
        max_attempts: int,
        prefetch: int,
        metrics: Metrics,
        on_park: ParkHook[M] | None = None,
    ) -> None:
        self._broker = broker
        self._queue_def = queue
        self._parse = parse
        self._handler = handler
        self._delays_ms = tuple(delays_ms)
        self._max_attempts = max_attempts
        self._prefetch = prefetch
        self._metrics = metrics
        self._on_park = on_park
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._channel = await self._broker.new_channel(self._prefetch)
        self._queue = await self._broker.declare_queue(self._queue_def, self._channel)
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking messages, let the ones in hand finish, then close the channel."""
        if self._queue is not None and self._tag is not None:
            await self._queue.cancel(self._tag)
            self._tag = None
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            log.warning("stopping with messages in flight", extra={"queue": self._queue_def.name})
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            async with message.process(requeue=True, ignore_processed=True):
                await self._handle(message)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        queue = self._queue_def.name
        attempt = int(str((message.headers or {}).get(ATTEMPT_HEADER, 1)))
        payload: M | None = None
        try:
            payload = self._parse(message.body)
            await self._handler(payload)
        except ValidationError as exc:
            await self._park(message, payload, attempt, f"invalid payload: {describe(exc)}")
        except PermanentError as exc:
            await self._park(message, payload, attempt, str(exc))
        except Exception as exc:
            cause = str(exc) or type(exc).__name__
            if attempt >= self._max_attempts:
                await self._park(message, payload, attempt, f"gave up after {attempt} attempts: {cause}")
                return
            retry_after = exc.retry_after if isinstance(exc, RetryLater) else None
            delay = choose_delay(self._delays_ms, attempt, retry_after)
            log.warning(
                "handler failed, retrying",
                extra={"queue": queue, "attempt": attempt, "delay_ms": delay, "cause": cause},
            )
            await self._republish(message, self._queue_def.wait_queue(delay).name, attempt + 1, cause)
            self._metrics.consumed.labels(queue, "retried").inc()
            return
        self._metrics.consumed.labels(queue, "ok").inc()

    async def _park(self, message: AbstractIncomingMessage, payload: M | None, attempt: int, cause: str) -> None:
        log.error("parking message", extra={"queue": self._queue_def.name, "attempt": attempt, "cause": cause})
        if self._on_park is not None:
            await self._on_park(payload, cause)
        await self._republish(
            message,
            self._queue_def.parking_lot.name,
            attempt,
            cause,
            extra={SOURCE_HEADER: self._queue_def.name, PARKED_AT_HEADER: datetime.now(UTC).isoformat()},
        )
        self._metrics.consumed.labels(self._queue_def.name, "parked").inc()

    async def _republish(
        self,
        message: AbstractIncomingMessage,
        queue: str,
        attempt: int,
        cause: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        headers = dict(message.headers or {})
        headers.update({ATTEMPT_HEADER: attempt, CAUSE_HEADER: cause[:1000], **(extra or {})})
        await self._broker.publish("", queue, message.body, headers=headers, message_id=message.message_id)
