"""What the operator console shows beyond the desk: the names it labels chats and transfer targets with, and the
supervisors' overview of queues and operators, computed from the open chats at the moment of the request."""

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from omni_router.domain.views import operator_view
from omni_router.service_layer.ports import Channels, Chats, Clock, Operators, Queues

LIST_LIMIT = 1000


class Console:
    def __init__(self, *, chats: Chats, queues: Queues, operators: Operators, channels: Channels, clock: Clock) -> None:
        self._chats = chats
        self._queues = queues
        self._operators = operators
        self._channels = channels
        self._clock = clock

    async def directory(self) -> dict[str, Any]:
        """Channels (for the channel icon), queues and operators (the transfer targets); never a secret."""
        return {
            "channels": [
                {"id": c.id, "name": c.name, "provider": c.provider} for c in await self._channels.all(LIST_LIMIT)
            ],
            "queues": [{"id": q.id, "name": q.name} for q in await self._queues.all(LIST_LIMIT)],
            "operators": [
                {"id": o.id, "name": o.name, "status": o.status, "role": o.role}
                for o in await self._operators.all(LIST_LIMIT)
            ],
        }

    async def overview(self) -> dict[str, Any]:
        """Per queue the chats waiting for an operator and how long the oldest has waited; per operator the status
        and load."""
        at = self._clock.now()
        waiting: dict[str, list[datetime]] = defaultdict(list)
        assigned: Counter[str] = Counter()
        held: Counter[str] = Counter()
        offered: Counter[str] = Counter()
        for chat in await self._chats.open_chats():
            queue_id = chat.queue_id or ""
            if chat.status == "assigned":
                assigned[queue_id] += 1
                held[chat.operator_id or ""] += 1
                continue
            waiting[queue_id].append(chat.created_at or at)
            offered.update(chat.offered_to)
        queues = []
        for queue in await self._queues.all(LIST_LIMIT):
            since = min(waiting.get(queue.id, []), default=None)
            queues.append(
                {
                    "id": queue.id,
                    "name": queue.name,
                    "routing_rule": queue.routing_rule,
                    "waiting": len(waiting.get(queue.id, [])),
                    "assigned": assigned[queue.id],
                    "oldest_waiting_since": since.isoformat() if since else None,
                    "longest_wait_seconds": round((at - since).total_seconds(), 1) if since else 0,
                }
            )
        operators = [
            {**operator_view(op), "assigned_chats": held[op.id], "offered_chats": offered[op.id]}
            for op in await self._operators.all(LIST_LIMIT)
        ]
        return {"generated_at": at.isoformat(), "queues": queues, "operators": operators}
