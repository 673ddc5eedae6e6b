"""`GET /api/events`: an operator's notifications as Server-Sent Events, replayed after `Last-Event-ID`, then live.

Each event is `id: <stream position>`, `event: <kind>`, `data: <the JSON the operator's queue gets>`. Clients
that can send headers authenticate with the Authorization header. A browser's EventSource cannot, so it first
gets a ticket with the header (`POST /api/events/ticket`): single-use, short-lived, worth nothing but one stream
(`?ticket=`), so the token itself never goes into a URL that proxies log. `?token=` is still taken from older
consoles (our logs redact it). `?last_event_id=` likewise stands in for the header.
"""

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.auth import operator_of, token_hash
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
# A ticket opens one stream within this time; the console asks for one right before it connects.
TICKET_SECONDS = 60.0
_ID = re.compile(r"^[0-9a-f]{24}$")


def events_routes(hub_of: Callable[[], Hub]) -> list[Route]:
    async def events(request: Request) -> Response:
        hub = hub_of()
        operator = await _operator(request, hub.db)
        position = Position(_last_event_id(request) or lowest_id_at(time.time()))
        stream = _stream(hub, operator["_id"], position, draining(request.app))
        return EventSourceResponse(stream, ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS)

    async def ticket(request: Request) -> Response:
        db = hub_of().db
        operator = await operator_of(request, db)
        issued, expires_at = await issue_ticket(db, operator["_id"])
        return JSONResponse({"ticket": issued, "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat()})

    return [
        Route("/api/events", events, methods=["GET"]),
        Route("/api/events/ticket", ticket, methods=["POST"]),
    ]


async def issue_ticket(db: Database, operator_id: str) -> tuple[str, float]:
    """A new ticket for the operator's stream and when it expires (epoch seconds); only its hash is stored."""
    now = time.time()
    await db.stream_tickets.delete_many({"expires_at": {"$lt": now}})
    ticket = secrets.token_urlsafe(32)
    expires_at = now + TICKET_SECONDS
    await db.stream_tickets.insert_one(
        {"_id": token_hash(ticket), "operator_id": operator_id, "expires_at": expires_at}
    )
    return ticket, expires_at


async def _operator(request: Request, db: Database) -> Document:
    if "authorization" in request.headers:
        return await operator_of(request, db)
    ticket = request.query_params.get("ticket", "").strip()
    if ticket:
        return await _ticket_holder(db, ticket)
    token = request.query_params.get("token", "").strip()
    if not token:
        raise ApiError(401, "unauthorized", "a bearer token is required (or ?ticket= from POST /api/events/ticket)")
    operator = await db.operators.find_one({"token_hash": token_hash(token)})
    if operator is None:
        raise ApiError(401, "unauthorized", "unknown token")
    return operator


async def _ticket_holder(db: Database, ticket: str) -> Document:
    """The operator a ticket was issued to; the ticket is spent whether or not it was still valid."""
    spent = await db.stream_tickets.find_one_and_delete({"_id": token_hash(ticket)})
    if spent is None or spent["expires_at"] < time.time():
        raise ApiError(401, "unauthorized", "unknown, used or expired ticket; get a new one")
    operator = await db.operators.find_one({"_id": spent["operator_id"]})
    if operator is None:
        raise ApiError(401, "unauthorized", "the ticket's operator no longer exists")
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
