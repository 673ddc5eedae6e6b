"""What the operator console needs beyond the operator API: who is signed in, the names it labels chats
and transfer targets with, and the supervisor's overview of queues and operators."""

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.auth import operator_of
from omni_router.desk import Desk
from omni_router.store import now, open_chats
from omni_router.views import operator_view
from omni_runtime.database import Database, Document
from omni_runtime.web import ApiError

Handler = Callable[[Request, Document], Awaitable[Response]]


def _moment(value: Any) -> datetime | None:
    """A stored time as an aware datetime (the nx-27017 stand-in may hand back ISO strings)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def directory(db: Database) -> dict[str, Any]:
    """Channels (for the channel icon), queues and operators (the transfer targets); never a secret."""
    channels = db.channels.find({}, {"name": 1, "provider": 1}).sort("_id", 1).limit(1000)
    queues = db.queues.find({}, {"name": 1}).sort("_id", 1).limit(1000)
    operators = db.operators.find({}, {"name": 1, "status": 1, "role": 1}).sort("_id", 1).limit(1000)
    return {
        "channels": [{"id": c["_id"], "name": c["name"], "provider": c["provider"]} async for c in channels],
        "queues": [{"id": q["_id"], "name": q["name"]} async for q in queues],
        "operators": [
            {"id": o["_id"], "name": o["name"], "status": o.get("status", "offline"), "role": o.get("role", "operator")}
            async for o in operators
        ],
    }


async def overview(db: Database) -> dict[str, Any]:
    """Per queue the chats waiting for an operator and how long the oldest has waited; per operator the
    status and load; computed from the open chats at the moment of the request."""
    at = now()
    waiting: dict[str, list[datetime]] = defaultdict(list)
    assigned: Counter[str] = Counter()
    held: Counter[str] = Counter()
    offered: Counter[str] = Counter()
    fields = {"queue_id": 1, "status": 1, "operator_id": 1, "offered_to": 1, "created_at": 1}
    async for chat in open_chats(db, fields):
        queue_id = chat.get("queue_id") or ""
        if chat["status"] == "assigned":
            assigned[queue_id] += 1
            held[chat.get("operator_id") or ""] += 1
            continue
        waiting[queue_id].append(_moment(chat.get("created_at")) or at)
        offered.update(chat.get("offered_to") or [])
    queues = []
    async for queue in db.queues.find({}).sort("_id", 1).limit(1000):
        since = min(waiting.get(queue["_id"], []), default=None)
        queues.append(
            {
                "id": queue["_id"],
                "name": queue["name"],
                "routing_rule": queue["routing_rule"],
                "waiting": len(waiting.get(queue["_id"], [])),
                "assigned": assigned[queue["_id"]],
                "oldest_waiting_since": since.isoformat() if since else None,
                "longest_wait_seconds": round((at - since).total_seconds(), 1) if since else 0,
            }
        )
    operators = [
        {**operator_view(op), "assigned_chats": held[op["_id"]], "offered_chats": offered[op["_id"]]}
        async for op in db.operators.find({}).sort("_id", 1).limit(1000)
    ]
    return {"generated_at": at.isoformat(), "queues": queues, "operators": operators}


def console_api_routes(desk_of: Callable[[], Desk]) -> list[Route]:
    def authed(handler: Handler, *, supervisors_only: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            operator = await operator_of(request, desk_of().db)
            if supervisors_only and operator.get("role") != "supervisor":
                raise ApiError(403, "forbidden", "only supervisors can see the overview")
            return await handler(request, operator)

        return endpoint

    async def me(request: Request, operator: Document) -> Response:
        return JSONResponse(operator_view(operator))

    async def names(request: Request, operator: Document) -> Response:
        return JSONResponse(await directory(desk_of().db))

    async def supervisor_overview(request: Request, operator: Document) -> Response:
        return JSONResponse(await overview(desk_of().db))

    return [
        Route("/api/operator/me", authed(me), methods=["GET"]),
        Route("/api/directory", authed(names), methods=["GET"]),
        Route("/api/supervisor/overview", authed(supervisor_overview, supervisors_only=True), methods=["GET"]),
    ]
