"""The parking lots: listing what exhausted its retries, inspecting one, sending it back to its queue or discarding it.

Listing takes messages without acking them and hands them back by closing the channel,
so nothing leaves a parking lot unless it was replayed (or discarded) with a confirm.
A message is parked by its consumer (with the cause in `x-omni-*` headers) or, past the queue's
delivery limit, dead-lettered by the broker itself (the cause is then read from `x-death`).
"""

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from omni_runtime.broker import Broker
from omni_runtime.consumer import (
    ATTEMPT_HEADER,
    CAUSE_HEADER,
    PARKED_AT_HEADER,
    SOURCE_HEADER,
    publishable_headers,
)

OWN_HEADERS = (CAUSE_HEADER, SOURCE_HEADER, PARKED_AT_HEADER)


@dataclass(frozen=True)
class Parked:
    id: str
    queue: str
    cause: str
    attempts: int
    parked_at: str | None
    body: Any
    headers: dict[str, Any]

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "cause": self.cause,
            "attempts": self.attempts,
            "parked_at": self.parked_at,
            "body": self.body,
        }

    def detail(self) -> dict[str, Any]:
        """The view and every header the message carries (the broker's dead-letter history included)."""
        return {**self.view(), "headers": self.headers}


def _lots(broker: Broker, queue: str | None) -> list[str]:
    """Consumer queues whose parking lots to read: all, or those `queue` names (`router.received`: every partition)."""
    if queue is None:
        return [q.name for q in broker.topology.consumer_queues]
    return broker.topology.family(queue)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    return deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode(errors="replace")


def _cause(headers: dict[str, Any], death: dict[str, Any]) -> str:
    """Ours when a consumer parked it; otherwise what the broker's `x-death` says."""
    cause = str(headers.get(CAUSE_HEADER, ""))
    if cause or not death:
        return cause
    reason = str(death.get("reason", "unknown"))
    cause = f"dead-lettered by the broker ({reason})"
    if reason == "delivery_limit":
        cause += ": handed out more often than the queue's delivery limit without an outcome (its consumer crashed"
        cause += " or stalled on it each time)"
    return cause


def read_parked(message: AbstractIncomingMessage, queue: str) -> Parked:
    headers = dict(message.headers or {})
    death = _death(headers)
    parked_at = headers.get(PARKED_AT_HEADER) or death.get("time")
    return Parked(
        id=message.message_id or "",
        queue=str(headers.get(SOURCE_HEADER) or headers.get("x-first-death-queue") or queue),
        cause=_cause(headers, death),
        attempts=int(str(headers.get(ATTEMPT_HEADER, 1))),
        parked_at=str(_jsonable(parked_at)) if parked_at else None,
        body=_body(message.body),
        headers=_jsonable(headers),
    )


async def _walk(broker: Broker, queue: str | None) -> AsyncGenerator[tuple[str, AbstractIncomingMessage]]:
    """Every parked message of the chosen lots, unacked, with the consumer queue it belongs to; closing the
    channel at the end (use it in `aclosing`) hands back whatever was not acked."""
    channel = await broker.new_channel(prefetch=0)
    try:
        for name in _lots(broker, queue):
            lot = await channel.get_queue(f"{name}.parked", ensure=False)
            while (message := await lot.get(no_ack=False, fail=False)) is not None:
                yield name, message
    finally:
        await channel.close()


async def list_parked(broker: Broker, queue: str | None = None, limit: int = 100) -> list[Parked]:
    found: list[Parked] = []
    async with aclosing(_walk(broker, queue)) as parked:
        async for name, message in parked:
            found.append(read_parked(message, name))
            if len(found) >= limit:
                break
    return found


async def find_parked(broker: Broker, parked_id: str) -> Parked | None:
    """The parked message with this id (its message id), left where it is; None if no lot holds it."""
    async with aclosing(_walk(broker, None)) as parked:
        async for name, message in parked:
            if message.message_id == parked_id:
                return read_parked(message, name)
    return None


async def replay_parked(
    broker: Broker, queue: str | None = None, ids: set[str] | None = None, discard: bool = False
) -> int:
    """Send parked messages (all, or those with `ids`) back to their queue with a fresh attempt count, or drop them."""
    done = 0
    async with aclosing(_walk(broker, queue)) as parked:
        async for name, message in parked:
            if ids is not None and message.message_id not in ids:
                continue  # left unacked: returns to the lot when the channel closes
            if not discard:
                headers = {
                    k: v for k, v in publishable_headers(dict(message.headers or {})).items() if k not in OWN_HEADERS
                }
                headers[ATTEMPT_HEADER] = 1
                await broker.publish("", name, message.body, headers=headers, message_id=message.message_id)
            await message.ack()
            done += 1
    return done
