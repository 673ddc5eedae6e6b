"""`GET /api/events`: an operator's notifications as Server-Sent Events, replayed after `Last-Event-ID`, then live.

Each event is `id: <stream position>`, `event: <kind>`, `data: <the JSON the operator's queue gets>`. Clients that
can send headers authenticate with the Authorization header. A browser's EventSource cannot, so it first gets a
ticket with the header (`POST /api/events/ticket`): single-use, short-lived, worth nothing but one stream
(`?ticket=`), so the token itself never goes into a URL that proxies log. `?token=` is still taken from older
consoles (our logs redact it). `?last_event_id=` likewise stands in for the header.
"""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.errors import Unauthorized
from omni_router.domain.model import Operator
from omni_router.entrypoints.context import services, signed_in
from omni_router.service_layer.ports import StoredNotification
from omni_router.service_layer.streams import Hub, Position, stored_after
from omni_runtime.web import ApiError, draining

PING_SECONDS = 15.0
# A client that stops reading for this long is dropped rather than held open.
SEND_TIMEOUT_SECONDS = 30.0
RECONNECT_MILLISECONDS = 1_000
# How often a waiting stream looks whether the server is shutting down.
CHECK_SECONDS = 0.25
_ID = re.compile(r"^[0-9a-f]{24}$")


async def events(request: Request) -> Response:
    """The operator's notifications as Server-Sent Events: what followed Last-Event-ID, then live.
    ---
    summary: The operator's notifications as Server-Sent Events, replayed after Last-Event-ID, then live
    description: >-
      Opens with `id: <position>`, `retry: 1000` and `: stream open`; each notification is `id: <position>`,
      `event: <kind>`, `data: <the JSON the operator's queue gets>`; a ping comment every 15 s. Without a
      position the stream starts now; one is replayed from as long as it is younger than
      NOTIFICATION_RETENTION_HOURS.
    tags: [events]
    security: [{operatorToken: []}, {streamTicket: []}, {operatorTokenInQuery: []}]
    parameters:
      - name: Last-Event-ID
        in: header
        description: the last position this stream sent; what came after it is replayed
        schema: {type: string, pattern: "^[0-9a-f]{24}$"}
      - name: last_event_id
        in: query
        description: the same, for clients that cannot send the header
        schema: {type: string, pattern: "^[0-9a-f]{24}$"}
    responses:
      "200":
        description: the event stream, until the client leaves or the server shuts down
        content: {text/event-stream: {schema: {type: string}}}
      "400":
        description: "`invalid_last_event_id`: not a position this stream sent"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401":
        description: no credentials, or an unknown token, or a used, expired or unknown ticket
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    hub = services(request).hub
    operator = await _operator(request)
    position = Position(_last_event_id(request) or hub.log.position_at(time.time()), hub.log)
    stream = _stream(hub, operator.id, position, draining(request.app))
    return EventSourceResponse(stream, ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS)


async def ticket(request: Request) -> Response:
    """A single-use ticket (60 s) that opens the operator's stream with ?ticket=.
    ---
    summary: A single-use ticket, valid 60 s, that opens the operator's event stream (`GET /api/events?ticket=`)
    description: For a browser's EventSource, which cannot send headers; only the ticket's hash is stored.
    tags: [events]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the ticket
        content:
          application/json:
            schema:
              type: object
              required: [ticket, expires_at]
              properties:
                ticket: {type: string}
                expires_at: {type: string, format: date-time}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    tickets = services(request).tickets
    operator = await signed_in(request)
    issued, expires_at = await tickets.issue(operator)
    return JSONResponse({"ticket": issued, "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat()})


async def _operator(request: Request) -> Operator:
    if "authorization" in request.headers:
        return await signed_in(request)
    ticket = request.query_params.get("ticket", "").strip()
    if ticket:
        return await services(request).tickets.holder(ticket)
    token = request.query_params.get("token", "").strip()
    if not token:
        raise Unauthorized("unauthorized", "a bearer token is required (or ?ticket= from POST /api/events/ticket)")
    return await services(request).desk.operator_for(token)


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
        async for note in stored_after(hub.log, operator_id, position.start):
            if position.take(note):
                yield _event(note, position)
        while not stop.is_set():
            if feed.behind:
                feed.behind = False
                async for note in stored_after(hub.log, operator_id, position.catch_up_from()):
                    if position.take(note):
                        yield _event(note, position)
            try:
                note = await asyncio.wait_for(feed.queue.get(), CHECK_SECONDS)
            except TimeoutError:
                continue
            if position.take(note):
                yield _event(note, position)


def _event(note: StoredNotification, position: Position) -> ServerSentEvent:
    return ServerSentEvent(data=note.body, event=note.event, id=position.last)


routes = [
    Route("/api/events", events, methods=["GET"]),
    Route("/api/events/ticket", ticket, methods=["POST"]),
]
