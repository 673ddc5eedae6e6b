"""The parking lots: listing what exhausted its retries and sending it back to its queue.

Listing takes messages without acking them and hands them back by closing the channel,
so nothing leaves a parking lot unless it was replayed (or discarded) with a confirm.
"""

import json
from dataclasses import dataclass
from typing import Any

from omni_runtime.broker import Broker
from omni_runtime.consumer import ATTEMPT_HEADER, CAUSE_HEADER, PARKED_AT_HEADER, SOURCE_HEADER
from omni_runtime.topology import CONSUMER_QUEUES


@dataclass(frozen=True)
class Parked:
    id: str
    queue: str
    cause: str
    attempts: int
    parked_at: str | None
    body: Any

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "cause": self.cause,
            "attempts": self.attempts,
            "parked_at": self.parked_at,
            "body": self.body,
        }


def _queues(queue: str | None) -> list[str]:
    names = [q.name for q in CONSUMER_QUEUES]
    return [queue] if queue in names else names if queue is None else []


async def list_parked(broker: Broker, queue: str | None = None, limit: int = 100) -> list[Parked]:
    found: list[Parked] = []
    channel = await broker.new_channel(prefetch=0)
    try:
        for name in _queues(queue):
            parked = await channel.get_queue(f"{name}.parked", ensure=False)
            while len(found) < limit:
                message = await parked.get(no_ack=False, fail=False)
                if message is None:
                    break
                headers = message.headers or {}
                try:
                    body = json.loads(message.body)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    body = message.body.decode(errors="replace")
                found.append(
                    Parked(
                        id=message.message_id or "",
                        queue=str(headers.get(SOURCE_HEADER, name)),
                        cause=str(headers.get(CAUSE_HEADER, "")),
                        attempts=int(str(headers.get(ATTEMPT_HEADER, 1))),
                        parked_at=str(headers[PARKED_AT_HEADER]) if PARKED_AT_HEADER in headers else None,
                        body=body,
                    )
                )
    finally:
        await channel.close()  # unacked messages return to their parking lots
    return found


async def replay_parked(
    broker: Broker, queue: str | None = None, ids: set[str] | None = None, discard: bool = False
) -> int:
    """Send parked messages (all, or those with `ids`) back to their queue with a fresh attempt count."""
    done = 0
    channel = await broker.new_channel(prefetch=0)
    try:
        for name in _queues(queue):
            parked = await channel.get_queue(f"{name}.parked", ensure=False)
            while True:
                message = await parked.get(no_ack=False, fail=False)
                if message is None:
                    break
                if ids is not None and message.message_id not in ids:
                    continue  # left unacked: returns to the lot when the channel closes
                if not discard:
                    headers = {
                        k: v
                        for k, v in (message.headers or {}).items()
                        if k not in (CAUSE_HEADER, SOURCE_HEADER, PARKED_AT_HEADER)
                    }
                    headers[ATTEMPT_HEADER] = 1
                    await broker.publish("", name, message.body, headers=headers, message_id=message.message_id)
                await message.ack()
                done += 1
    finally:
        await channel.close()
    return done
