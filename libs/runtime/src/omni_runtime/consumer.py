"""Consuming with manual acks: a message is acked only after its handler's effect is durable.

A handler that raises is tried again at once for a blip (a dropped connection, a 5xx: up to three
tries within about a second), then the message goes to a wait queue (growing delays, or the other
side's Retry-After), and after the last attempt to the parking lot with the cause in its headers.
A message the broker has handed out `delivery_limit` times without an outcome (its consumer crashed
or stalled on it each time) is parked without running the handler again; the queue's own delivery
limit dead-letters it into the parking lot should even that fail.

A handler whose effect outside our systems took place but could not be written down (a messenger accepted a
send, then the database failed) raises Unrecorded with the outcome: from then on only the `record` step is tried,
at once for blips and then through the wait queues with the outcome in the `x-omni-outcome` header (the
republish is confirmed before the delivery is acked), never the handler again.

With an `order_key`, messages with the same key are handled one at a time in delivery order while
messages with different keys run side by side (the router's partitions: one chat at a time).

In batch mode (`Batching`, with an `order_key`) the consumer takes what is ready, up to a size or until a few
milliseconds passed since the first, and hands the payloads to the batch handler at once; it acks what the handler
did once it returns (the handler returns after its writes). What the handler hands back (it must hand back the
rest of a key's messages after one it hands back) and what it cannot take (a refused payload, a retry, an outcome
to record) then run one by one, as without batches, keys side by side; a batch handler that raises sends the whole
batch one by one, where the retries and the parking lot decide per message. One batch at a time: a key's messages
keep their order inside and across batches.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

from omni_runtime.broker import Broker
from omni_runtime.errors import BrokerUnavailable, Deferred, PermanentError, RetryLater, Unrecorded
from omni_runtime.metrics import Metrics
from omni_runtime.topology import QueueDef
from omni_runtime.web import describe

log = logging.getLogger(__name__)

M = TypeVar("M")

ATTEMPT_HEADER = "x-omni-attempt"
CAUSE_HEADER = "x-omni-cause"
SOURCE_HEADER = "x-omni-source-queue"
PARKED_AT_HEADER = "x-omni-parked-at"
# What a handler did but could not write down (Unrecorded): a delivery carrying it only runs the `record` step.
OUTCOME_HEADER = "x-omni-outcome"
# How long a consumer waits before subscribing again after a failed try (the slow start's end, in batch mode).
RESUBSCRIBE_SECONDS = 1.0
# Set by the broker on each delivery from a quorum queue: how often the message was handed back unsettled.
DELIVERY_COUNT_HEADER = "x-delivery-count"
# Headers the broker owns (delivery counts, dead-letter history): never copied into a message we publish.
BROKER_HEADERS = ("x-delivery-count", "x-death", "x-first-death-", "x-last-death-")

Handler = Callable[[M], Awaitable[None]]
ParkHook = Callable[[M | None, str], Awaitable[None]]
Recorder = Callable[[M, str], Awaitable[None]]
# Takes a batch of payloads; answers the positions it left to be handled one by one.
BatchHandler = Callable[[Sequence[M]], Awaitable[Collection[int]]]


@dataclass(frozen=True)
class QuickRetries:
    """In-process tries for blips, before a message is sent to a wait queue."""

    attempts: int = 3
    within_seconds: float = 1.0
    first_wait_seconds: float = 0.1


def is_blip(exc: BaseException) -> bool:
    """Worth trying again at once: a dropped link or a 5xx, not a rate limit and not a wait the other side asked for."""
    if isinstance(exc, RetryLater):
        return exc.retry_after is None and not exc.throttled
    return isinstance(exc, BrokerUnavailable | ConnectionFailure)


def choose_delay(delays_ms: Sequence[int], attempt: int, retry_after: float | None) -> int:
    """The wait before attempt `attempt + 1`: the schedule's step, or the first step covering Retry-After."""
    step = delays_ms[min(attempt - 1, len(delays_ms) - 1)]
    if retry_after is None:
        return step
    wanted = retry_after * 1000
    return next((delay for delay in delays_ms if delay >= wanted), delays_ms[-1])


def _fresh(message: AbstractIncomingMessage) -> bool:
    """Never handed out before (the broker counts deliveries that ended without an outcome)."""
    return not int(str((message.headers or {}).get(DELIVERY_COUNT_HEADER, 0) or 0))


def publishable_headers(headers: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in headers.items() if not k.startswith(BROKER_HEADERS)}


@dataclass(frozen=True)
class _Parsed(Generic[M]):
    payload: M | None
    error: ValidationError | None


@dataclass(frozen=True)
class Batching(Generic[M]):
    """Batch mode: up to `size` messages, or what came within `wait_seconds` of the first, to `handler`."""

    handler: BatchHandler[M]
    size: int
    wait_seconds: float


@dataclass(frozen=True)
class _Delivery(Generic[M]):
    message: AbstractIncomingMessage
    parsed: _Parsed[M]
    generation: int
    arrived: float = field(default_factory=time.monotonic)


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
        record: Recorder[M] | None = None,
        delivery_limit: int | None = None,
        order_key: Callable[[M], str] | None = None,
        quick_retries: QuickRetries | None = QuickRetries(),
        passive: bool = False,
        batching: Batching[M] | None = None,
    ) -> None:
        if batching is not None and order_key is None:
            raise ValueError("batch mode needs an order key")
        self._broker = broker
        self._queue_def = queue
        self._parse = parse
        self._handler = handler
        self._delays_ms = tuple(delays_ms)
        self._max_attempts = max_attempts
        self._prefetch = prefetch
        self._metrics = metrics
        self._on_park = on_park
        self._record = record
        self._delivery_limit = delivery_limit
        self._order_key = order_key
        self._quick = quick_retries
        self._passive = passive
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        # Per order key, the turn of the last message taken: the next one of that key waits for it.
        self._tails: dict[str, asyncio.Event] = {}
        self._stopping = False
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.delivered = 0  # messages the broker handed this consumer, ever
        self._ramped = True
        self._generation = 0  # one per start: a delivery of an earlier channel is never handled after a restart
        self._batching = batching
        # Batch mode: deliveries in arrival order, not yet handled; the task taking batches from them.
        self._pending: list[_Delivery[M]] = []
        self._arrived = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._given_up: set[str] = set()  # subscriptions the slow start closed: their deliveries went back
        self._resubscribe_due = False
        self._resubscriber: asyncio.Task[None] | None = None  # without batches: the slow start's end, between messages
        self.batches = 0  # batches handed to the batch handler, ever

    @property
    def queue(self) -> str:
        return self._queue_def.name

    async def start(self) -> None:
        self._stopping = False
        self._generation += 1
        self._resubscribe_due = False
        self._given_up.clear()  # their deliveries belong to an earlier generation
        # Slow start: one message at a time until a fresh one (never handed out before) was settled. After a
        # crash the broker hands back what the dead process held, the culprit among it; taken one by one, only
        # the culprit's delivery count keeps growing, not that of every message that happened to be in flight.
        self._ramped = self._delivery_limit is None or self._full_prefetch == 1
        await self._subscribe(self._full_prefetch if self._ramped else 1)
        if self._batching is not None:
            self._pending.clear()
            self._collector = asyncio.create_task(self._collect(self._generation))

    @property
    def _full_prefetch(self) -> int:
        """A batch can only fill when the broker hands out at least a batch (two: one handled, one filling)."""
        return max(self._prefetch, 2 * self._batching.size) if self._batching is not None else self._prefetch

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking messages, let the handlers running finish, then close the channel.

        An ordered consumer keeps its subscription until then and starts nothing new: what it was handed
        but had not begun goes back to the queue when the channel closes, ahead of everything after it, so
        the next consumer (single active consumer) carries on in the same order.
        """
        self._stopping = True
        if self._order_key is None and self._queue is not None and self._tag is not None:
            await self._queue.cancel(self._tag)
        self._tag = None
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            log.warning("stopping with messages in flight", extra={"queue": self._queue_def.name})
        for task in (self._resubscriber, self._collector):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._resubscriber = None
        self._collector = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Everything before the first await runs in delivery order (aio-pika starts one task per delivery,
        # in order): this is where a message takes its place behind the earlier ones with its key.
        self.delivered += 1
        generation = self._generation
        parsed = self._parse_body(message.body)
        if self._batching is not None:
            self._arrive(_Delivery(message, parsed, generation))
        else:
            await self._in_turn(message, parsed, generation)

    async def _in_turn(self, message: AbstractIncomingMessage, parsed: _Parsed[M], generation: int) -> None:
        """Handled once the earlier messages with its key were (this first part runs before any await)."""
        key = self._order_key(parsed.payload) if self._order_key and parsed.payload is not None else None
        before = self._tails.get(key) if key is not None else None
        turn = asyncio.Event()
        if key is not None:
            self._tails[key] = turn
        try:
            if before is not None:
                await before.wait()
            if self._stopping or generation != self._generation or message.consumer_tag in self._given_up:
                return  # left unsettled: closing the channel hands it back in order
            await self._process(message, parsed)
        finally:
            turn.set()
            if key is not None and self._tails.get(key) is turn:
                del self._tails[key]

    def _parse_body(self, body: bytes) -> _Parsed[M]:
        try:
            return _Parsed(self._parse(body), None)
        except ValidationError as exc:
            return _Parsed(None, exc)

    async def _process(self, message: AbstractIncomingMessage, parsed: _Parsed[M]) -> None:
        self._running += 1
        self._idle.clear()
        try:
            async with message.process(requeue=True, ignore_processed=True):
                await self._handle(message, parsed)
            if not self._ramped and _fresh(message):
                await self._ramp()
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def _ramp(self) -> None:
        """A fresh message was settled: the full prefetch from now on, by subscribing again (`_resubscribe`) between
        messages: a quorum queue applies a changed QoS only to consumers that subscribe after it. In batch mode
        between batches; otherwise the slow start's subscription starts nothing more (what it is handed after this
        stays unsettled and goes back when its channel closes) and is closed once what it began was settled."""
        self._ramped = True
        if self._batching is not None:
            self._resubscribe_due = True
        elif self._tag is not None and not self._stopping:
            self._given_up.add(self._tag)
            # A task of our own: aio-pika cancels a channel's delivery tasks (this one among them) when it closes.
            self._resubscriber = asyncio.create_task(self._resubscribe_when_idle(self._generation))

    async def _resubscribe_when_idle(self, generation: int) -> None:
        """Without batches: `_resubscribe` once no handler runs (the slow start's subscription begins none)."""
        await self._idle.wait()
        if generation == self._generation:
            await self._resubscribe()

    def _arrive(self, delivery: _Delivery[M]) -> None:
        """Batch mode: a delivery waits for its batch, unless its subscription was closed (it went back)."""
        if delivery.message.consumer_tag not in self._given_up:
            self._pending.append(delivery)
            self._arrived.set()

    async def _resubscribe(self) -> None:
        """The full prefetch, between batches: the slow start's channel closed, then a new one subscribed. Closing
        hands back what the old subscription was given but not yet handled, ahead of everything later, in the same
        step as it ends the subscription, so whichever consumer gets the queue's next messages (this new one, another
        router's waiting for the partition, or on a queue consumed side by side any other) gets these first. Only
        cancelling would let the next one start on later messages while these were still pending here."""
        self._resubscribe_due = False
        old_channel, old_tag = self._channel, self._tag
        if old_channel is None or old_tag is None or old_channel.is_closed or self._stopping:
            return
        self._given_up.add(old_tag)
        with contextlib.suppress(Exception):  # a channel the broker closed has handed back what it held too
            await old_channel.close()
        self._pending = [d for d in self._pending if d.message.consumer_tag != old_tag]
        while not self._stopping:
            try:
                await self._subscribe(self._full_prefetch)
                return
            except Exception as exc:
                log.warning(
                    "subscribing again failed, trying again",
                    extra={"queue": self._queue_def.name, "cause": str(exc) or type(exc).__name__},
                )
                await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def _subscribe(self, prefetch: int) -> None:
        channel = await self._broker.new_channel(prefetch)
        if self._passive:  # a queue consumed as it is, whatever it was declared with
            queue = await channel.declare_queue(self._queue_def.name, passive=True)
        else:
            queue = await self._broker.declare_queue(self._queue_def, channel)
        self._channel, self._queue = channel, queue
        self._tag = await queue.consume(self._on_message)

    # Batch mode ----------------------------------------------------------------------------------------------------

    async def _collect(self, generation: int) -> None:
        """Take batches from what arrived, one at a time: up to the size, or what came within the wait of the first."""
        assert self._batching is not None
        size, wait = self._batching.size, self._batching.wait_seconds
        while not self._stopping and generation == self._generation:
            await self._arrived.wait()
            self._arrived.clear()
            if not self._pending:
                continue
            # Within the wait of the first one waiting: one that waited behind the batch before goes at once.
            await self._fill(self._pending[0].arrived + wait)
            if self._stopping or generation != self._generation:
                return  # left unsettled: closing the channel hands them back in order
            batch = self._take(size, generation)
            try:
                await self._run_batch(batch)
                if self._resubscribe_due:
                    await self._resubscribe()
            except Exception:  # what failed is unsettled or requeued; the partition goes on
                log.exception("batch not settled", extra={"queue": self._queue_def.name})

    def _take(self, size: int, generation: int) -> list[_Delivery[M]]:
        """The next batch (what an earlier generation or a closed subscription was handed is dropped: it went back)."""
        batch = self._pending[:size]
        del self._pending[: len(batch)]
        if self._pending:
            self._arrived.set()
        return [d for d in batch if d.generation == generation and d.message.consumer_tag not in self._given_up]

    async def _fill(self, deadline: float) -> None:
        """Wait for more until the batch is full or the deadline passed."""
        assert self._batching is not None
        size = self._batching.size
        while len(self._pending) < size and (left := deadline - time.monotonic()) > 0 and not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._arrived.wait()
            self._arrived.clear()

    async def _run_batch(self, batch: list[_Delivery[M]]) -> None:
        """What the batch handler may take, to it at once (acked after it returns); the rest one by one."""
        if not batch:
            return
        self._running += 1
        self._idle.clear()
        try:
            chosen = self._batchable(batch)
            done = {chosen[n] for n in await self._bulk([batch[i] for i in chosen])}
            await self._one_by_one([d for i, d in enumerate(batch) if i not in done])
            if not self._ramped and any(_fresh(batch[i].message) for i in done):
                await self._ramp()
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    def _key(self, delivery: _Delivery[M]) -> str | None:
        payload = delivery.parsed.payload
        return self._order_key(payload) if self._order_key is not None and payload is not None else None

    def _batchable(self, batch: Sequence[_Delivery[M]]) -> list[int]:
        """Positions of first deliveries with a valid payload and nothing else to do first (no refusal, no retry, no
        outcome to record), each behind no such other of its key (a key's order holds)."""
        chosen: list[int] = []
        held: set[str] = set()
        for position, delivery in enumerate(batch):
            key = self._key(delivery)
            if key is None:
                continue
            headers = delivery.message.headers or {}
            plain = (
                self._refusal(delivery.parsed, headers) is None
                and OUTCOME_HEADER not in headers
                and int(str(headers.get(ATTEMPT_HEADER, 1))) == 1
            )
            if plain and key not in held:
                chosen.append(position)
            else:
                held.add(key)
        return chosen

    async def _bulk(self, deliveries: Sequence[_Delivery[M]]) -> set[int]:
        """The batch handler on `deliveries`, then the acks of what it did; answers their positions. A handler that
        raises did nothing for certain: every one of them goes one by one (repeats are the handlers' to dedupe)."""
        if not deliveries or self._batching is None:
            return set()
        queue = self._queue_def.name
        self.batches += 1
        payloads = [d.parsed.payload for d in deliveries if d.parsed.payload is not None]
        try:
            left = set(await self._batching.handler(payloads))
        except Exception as exc:
            log.warning(
                "batch failed, its messages are handled one by one",
                extra={"queue": queue, "size": len(deliveries), "cause": str(exc) or type(exc).__name__},
            )
            return set()
        done = {n for n in range(len(deliveries)) if n not in left}
        for n in sorted(done):
            await self._ack(deliveries[n].message)
        return done

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        queue = self._queue_def.name
        try:
            await message.ack()
        except Exception as exc:  # left unsettled: the broker hands it out again and the handler dedupes it
            log.warning("ack failed", extra={"queue": queue, "cause": str(exc) or type(exc).__name__})
        self._metrics.consumed.labels(queue, "ok").inc()

    async def _one_by_one(self, deliveries: Sequence[_Delivery[M]]) -> None:
        """Each as without batches, in delivery order per key, keys side by side."""
        by_key: dict[object, list[_Delivery[M]]] = {}
        for position, delivery in enumerate(deliveries):
            key = self._key(delivery)
            by_key.setdefault(key if key is not None else position, []).append(delivery)

        async def in_order(line: list[_Delivery[M]]) -> None:
            for delivery in line:
                try:
                    await self._process(delivery.message, delivery.parsed)
                except Exception:  # not even retried (the broker is gone): requeued, as without batches
                    log.exception("message not settled", extra={"queue": self._queue_def.name})

        await asyncio.gather(*(in_order(line) for line in by_key.values()))

    async def _handle(self, message: AbstractIncomingMessage, parsed: _Parsed[M]) -> None:
        headers = message.headers or {}
        attempt = int(str(headers.get(ATTEMPT_HEADER, 1)))
        outcome = str(headers[OUTCOME_HEADER]) if OUTCOME_HEADER in headers else None
        refusal = self._refusal(parsed, headers)
        if refusal is not None:
            await self._park(message, parsed.payload, attempt, refusal, outcome)
            return
        assert parsed.payload is not None
        await self._run(message, parsed.payload, attempt, outcome)

    def _refusal(self, parsed: _Parsed[M], headers: Mapping[str, Any]) -> str | None:
        """Why a delivery is parked without running its handler: a payload that cannot be valid, or one the broker
        handed out DELIVERY_LIMIT times without an outcome."""
        if parsed.error is not None:
            return f"invalid payload: {describe(parsed.error)}"
        handed_back = int(str(headers.get(DELIVERY_COUNT_HEADER, 0) or 0))
        if self._delivery_limit is not None and handed_back >= self._delivery_limit:
            return (
                f"handed out {handed_back + 1} times without an outcome: its consumer crashed, stalled "
                "or lost its broker link each time"
            )
        return None

    async def _run(self, message: AbstractIncomingMessage, payload: M, attempt: int, outcome: str | None) -> None:
        """The handler (or, with an outcome left to record, only the recording), and where the message goes next."""
        queue = self._queue_def.name
        try:
            if outcome is None:
                await self._call(payload)
            else:
                await self._finish(payload, outcome)
        except Unrecorded as exc:
            await self._retry(message, payload, attempt, str(exc), None, exc.outcome)
            return
        except ValidationError as exc:
            await self._park(message, payload, attempt, f"invalid payload: {describe(exc)}")
        except PermanentError as exc:
            await self._park(message, payload, attempt, str(exc))
        except Deferred as exc:
            await self._republish(message, self._queue_def.wait_queue(self._delays_ms[0]).name, attempt, str(exc))
            self._metrics.consumed.labels(queue, "deferred").inc()
            return
        except Exception as exc:
            retry_after = exc.retry_after if isinstance(exc, RetryLater) else None
            await self._retry(message, payload, attempt, str(exc) or type(exc).__name__, retry_after)
            return
        self._metrics.consumed.labels(queue, "ok").inc()

    async def _retry(
        self,
        message: AbstractIncomingMessage,
        payload: M,
        attempt: int,
        cause: str,
        retry_after: float | None,
        outcome: str | None = None,
    ) -> None:
        """To the wait queue the schedule (or Retry-After) picks, or to the parking lot after the last attempt;
        an `outcome` left to record goes along in its header."""
        queue = self._queue_def.name
        if attempt >= self._max_attempts:
            await self._park(message, payload, attempt, f"gave up after {attempt} attempts: {cause}", outcome)
            return
        delay = choose_delay(self._delays_ms, attempt, retry_after)
        log.warning(
            "handler failed, retrying",
            extra={"queue": queue, "attempt": attempt, "delay_ms": delay, "cause": cause, "recording": bool(outcome)},
        )
        extra = {OUTCOME_HEADER: outcome} if outcome is not None else None
        await self._republish(message, self._queue_def.wait_queue(delay).name, attempt + 1, cause, extra)
        self._metrics.consumed.labels(queue, "retried").inc()

    async def _call(self, payload: M) -> None:
        """The handler, tried again at once for blips (QuickRetries); what still fails propagates. An effect it
        reports Unrecorded is recorded (`_finish`) without running the handler again."""
        try:
            await self._quickly(partial(self._handler, payload))
        except Unrecorded as done:
            log.warning(
                "done but not recorded; only the recording is tried again",
                extra={"queue": self._queue_def.name, "cause": str(done)},
            )
            await self._finish(payload, done.outcome)

    async def _finish(self, payload: M, outcome: str) -> None:
        """The `record` step for an outcome, tried again at once for blips; a failure raises Unrecorded, which
        carries the outcome on to the wait queue."""
        if self._record is None:
            raise PermanentError(f"{self._queue_def.name} has no step to record what its handler did")
        try:
            await self._quickly(partial(self._record, payload, outcome))
        except Exception as exc:
            raise Unrecorded(outcome, f"recording what was done failed: {str(exc) or type(exc).__name__}") from exc

    async def _quickly(self, step: Callable[[], Awaitable[None]]) -> None:
        """`step`, tried again at once for blips (QuickRetries); what still fails propagates."""
        if self._quick is None:
            await step()
            return
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_blip),
            stop=stop_after_attempt(self._quick.attempts) | stop_after_delay(self._quick.within_seconds),
            wait=wait_exponential(multiplier=self._quick.first_wait_seconds, max=self._quick.within_seconds / 2),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await step()

    async def _park(
        self,
        message: AbstractIncomingMessage,
        payload: M | None,
        attempt: int,
        cause: str,
        outcome: str | None = None,
    ) -> None:
        """To the parking lot, after the `on_park` hook; not for a message whose effect took place (`outcome`):
        that did not fail, and it keeps the outcome for a replay to record."""
        log.error("parking message", extra={"queue": self._queue_def.name, "attempt": attempt, "cause": cause})
        if self._on_park is not None and outcome is None:
            await self._on_park(payload, cause)
        extra = {SOURCE_HEADER: self._queue_def.name, PARKED_AT_HEADER: datetime.now(UTC).isoformat()}
        if outcome is not None:
            extra[OUTCOME_HEADER] = outcome
        await self._republish(message, self._queue_def.parking_lot.name, attempt, cause, extra=extra)
        self._metrics.consumed.labels(self._queue_def.name, "parked").inc()

    async def _republish(
        self,
        message: AbstractIncomingMessage,
        queue: str,
        attempt: int,
        cause: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        headers = publishable_headers(dict(message.headers or {}))
        headers.update({ATTEMPT_HEADER: attempt, CAUSE_HEADER: cause[:1000], **(extra or {})})
        await self._broker.publish("", queue, message.body, headers=headers, message_id=message.message_id)
