"""`GET /api/events`: an operator's notifications as Server-Sent Events, replayed after `Last-Event-ID`, then live.

Each event is `id: <stream position>`, `event: <kind>`, `data: <the JSON the operator's queue gets>`. The
token comes in the Authorization header or, for browsers' EventSource (which cannot set headers), in
`?token=`; `?last_event_id=` likewise stands in for the header.
"""

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omni_router.auth import bearer, token_hash
from omni_router.notifications import Hub, Position, stored_after
from omni_runtime.database import Database, Document
from omni_runtime.ids import lowest_id_at
from omni_runtime.web import ApiError, draining

PING_SECONDS = 15.0
# A client that stops reading for this long is dropped rather than held open.
SEND_TIMEOUT_SECONDS = 30.0
RECONNECT_MILLISECONDS = 1_000
# How often a waiting stream looks whether the server is shutting down.
CHECK_SECONDS = 0.25
_ID = re.compile(r"^[0-9a-f]{24}$")


def events_routes(hub_of: Callable[[], Hub]) -> list[Route]:
    async def events(request: Request) -> Response:
        hub = hub_of()
        operator = await _operator(request, hub.db)
        position = Position(_last_event_id(request) or lowest_id_at(time.time()))
        stream = _stream(hub, operator["_id"], position, draining(request.app))
        return EventSourceResponse(stream, ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS)

    return [Route("/api/events", events, methods=["GET"])]


async def _operator(request: Request, db: Database) -> Document:
    if "authorization" in request.headers:
        token = bearer(request)
    else:
        token = request.query_params.get("token", "").strip()
        if not token:
            raise ApiError(401, "unauthorized", "a bearer token is required (header, or ?token= for EventSource)")
    operator = await db.operators.find_one({"token_hash": token_hash(token)})
    if operator is None:
        raise ApiError(401, "unauthorized", "unknown token")
    return operator


def _last_event_id(request: Request) -> str | None:
    value = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if not value:
        return None
    if not _ID.match(value):
        raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event id this stream sent")
    return value


async def _stream(
    hub: Hub, operator_id: str, position: Position, stop: asyncio.Event
) -> AsyncIterator[ServerSentEvent]:
    """Replay what is stored after the position, then what the hub hands over, until the server drains."""
    async with hub.subscribe(operator_id) as feed:
        # Gives a client that has seen nothing yet a position to reconnect from.
        yield ServerSentEvent(id=position.last, retry=RECONNECT_MILLISECONDS, comment="stream open")
        async for doc in stored_after(hub.db, operator_id, position.start):
            if position.take(doc):
                yield _event(doc, position)
        while not stop.is_set():
            if feed.behind:
                feed.behind = False
                async for doc in stored_after(hub.db, operator_id, position.catch_up_from()):
                    if position.take(doc):
                        yield _event(doc, position)
            try:
                doc = await asyncio.wait_for(feed.queue.get(), CHECK_SECONDS)
            except TimeoutError:
                continue
            if position.take(doc):
                yield _event(doc, position)


def _event(doc: Document, position: Position) -> ServerSentEvent:
    return ServerSentEvent(data=doc["body"], event=doc["event"], id=position.last)
