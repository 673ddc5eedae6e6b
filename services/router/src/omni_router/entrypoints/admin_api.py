"""The admin HTTP API: queues, operators, channels and the parking lots (API.md, "Router: admin API")."""

from typing import cast

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_router.domain.admin import ADMIN_KINDS, AdminKind, ChannelSettings, OperatorSettings, QueueSettings
from omni_router.domain.model import Channel, Operator, Queue
from omni_router.domain.views import channel_view, operator_view, queue_view
from omni_router.entrypoints.context import admin
from omni_runtime.web import ApiError, parse_body, read_json


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue: str | None = None
    ids: list[str] | None = None
    discard: bool = False


def view(item: Queue | Operator | Channel) -> dict[str, object]:
    match item:
        case Queue():
            return queue_view(item)
        case Operator():
            return operator_view(item)
        case Channel():
            return channel_view(item)


def kind_of(request: Request) -> AdminKind:
    kind = request.path_params["kind"]
    if kind not in ADMIN_KINDS:
        raise ApiError(404, "not_found", f"no such collection: {kind}")
    return cast(AdminKind, kind)


async def create_queue(request: Request) -> Response:
    """Create a queue.
    ---
    summary: Create a queue
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [name]
            properties:
              name: {type: string, minLength: 1, maxLength: 200}
              routing_rule:
                type: string
                default: to_all
                description: "`to_all`, `to_available` or a registered custom rule (docs/routing.md)"
              completion_timeout_minutes:
                type: number
                nullable: true
                exclusiveMinimum: true
                minimum: 0
                maximum: 43200
                description: an open chat without messages this long is closed; fractions are taken
              operator_ids: {type: array, items: {type: string}, default: []}
              on_operator_offline:
                type: string
                enum: [keep, return]
                default: keep
                description: what becomes of the chats an operator holds when they go offline
              offer_timeout_seconds:
                type: number
                nullable: true
                exclusiveMinimum: true
                minimum: 0
                maximum: 86400
                description: "how long an offer waits for an accept; unset: OFFER_TIMEOUT_SECONDS"
              actions:
                type: array
                nullable: true
                items: {type: string, enum: [accept, reply, close, transfer, decline, note, label]}
                description: >-
                  the actions its operators may be offered (GetChatActions) and take; any other answers 403
                  `action_not_allowed`. Unset: all of them
              business_hours: {$ref: "#/components/schemas/BusinessHours"}
              greeting_text: {type: string, nullable: true, minLength: 1, maxLength: 4096}
              out_of_hours_text: {type: string, nullable: true, minLength: 1, maxLength: 4096}
              csat: {$ref: "#/components/schemas/Csat"}
    responses:
      "201":
        description: the queue
        content: {application/json: {schema: {$ref: "#/components/schemas/Queue"}}}
      "400":
        description: "`malformed_json`, or `invalid_body`: refused by the model, an unknown rule or operator ids"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    queue = await admin_.create_queue(parse_body(QueueSettings, await read_json(request)))
    return JSONResponse(queue_view(queue), status_code=201)


async def create_operator(request: Request) -> Response:
    """Create an operator; the answer carries their token, this once.
    ---
    summary: Create an operator; the answer carries their token, this once
    description: Only the token's hash is stored. The operator's queue `operator.<id>` is declared first.
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [name]
            properties:
              name: {type: string, minLength: 1, maxLength: 200}
              max_chats: {type: integer, minimum: 1, maximum: 1000, default: 5}
              role: {type: string, enum: [operator, supervisor], default: operator}
    responses:
      "201":
        description: the operator (offline), with their token
        content:
          application/json:
            schema:
              allOf:
                - {$ref: "#/components/schemas/Operator"}
                - type: object
                  required: [token]
                  properties: {token: {type: string, description: the operator's bearer token; never shown again}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    operator, token = await admin_.create_operator(parse_body(OperatorSettings, await read_json(request)))
    return JSONResponse({**operator_view(operator), "token": token}, status_code=201)


async def create_channel(request: Request) -> Response:
    """Create a channel (secrets are write-only).
    ---
    summary: Create a channel (its secret settings are never answered)
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [name, provider, source, queue_id]
            properties:
              name: {type: string, minLength: 1, maxLength: 200}
              provider:
                type: string
                pattern: "^[a-z0-9_-]+$"
                minLength: 1
                maxLength: 64
                description: "`telegram`, `messenger`, `whatsapp`, `twilio`, or a third-party provider's name"
              source: {type: string, minLength: 1, maxLength: 256, description: "the channel's id at its messenger"}
              queue_id: {type: string}
              settings:
                type: object
                default: {}
                description: >-
                  the provider's settings (docs/api.md): tokens and secrets, `mode` for Telegram; third-party
                  providers need `secret` and an http(s) `outgoing_url`
              is_active: {type: boolean, default: true}
    responses:
      "201":
        description: the channel, without its secrets
        content: {application/json: {schema: {$ref: "#/components/schemas/Channel"}}}
      "400":
        description: >-
          `malformed_json`, or `invalid_body`: refused by the model, an unknown provider or queue, settings missing
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "409":
        description: "`duplicate_channel`: a channel of this provider with this source exists"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    channel = await admin_.create_channel(parse_body(ChannelSettings, await read_json(request)))
    return JSONResponse(channel_view(channel), status_code=201)


async def list_items(request: Request) -> Response:
    """The queues, operators or channels.
    ---
    summary: The queues, operators or channels (up to 1000, one page)
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: kind, in: path, required: true, schema: {type: string, enum: [queues, operators, channels]}}
    responses:
      "200":
        description: the collection's items
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/AdminItem"}}
                next_cursor: {type: string, nullable: true, enum: [null]}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    items = await admin_.list(kind_of(request))
    return JSONResponse({"items": [view(item) for item in items], "next_cursor": None})


async def get_item(request: Request) -> Response:
    """One queue, operator or channel.
    ---
    summary: One queue, operator or channel
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: kind, in: path, required: true, schema: {type: string, enum: [queues, operators, channels]}}
    responses:
      "200":
        description: the item
        content: {application/json: {schema: {$ref: "#/components/schemas/AdminItem"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    return JSONResponse(view(await admin_.get(kind_of(request), request.path_params["item_id"])))


async def patch_item(request: Request) -> Response:
    """Change a queue, operator or channel (checked as creation checks it; a refused change changes nothing).
    ---
    summary: Change a queue, operator or channel
    description: >-
      The stored item with the change applied is checked as creation checks it; a refused change changes nothing.
      Routing follows: an operator set online is offered what waits, set offline their offers move on; a queue's
      waiting line is offered again.
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: kind, in: path, required: true, schema: {type: string, enum: [queues, operators, channels]}}
    requestBody:
      required: true
      description: >-
        the fields to change. Queues: `name`, `routing_rule`, `completion_timeout_minutes`, `operator_ids`,
        `on_operator_offline`, `offer_timeout_seconds`, `actions`, `business_hours`, `greeting_text`,
        `out_of_hours_text`, `csat`. Operators: `name`, `max_chats`, `role`, `status`
        (`online`, `busy`, `offline`). Channels: `name`, `queue_id`, `settings` (merged over the stored ones, so
        secrets not named are kept), `is_active`.
      content:
        application/json:
          schema: {type: object, minProperties: 1}
    responses:
      "200":
        description: the item after the change
        content: {application/json: {schema: {$ref: "#/components/schemas/AdminItem"}}}
      "400":
        description: "`malformed_json`, or `invalid_body`: a field that cannot change, or a value creation would refuse"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    kind = kind_of(request)
    await admin_.get(kind, request.path_params["item_id"])  # 404 before the body is read
    changed = await admin_.change(kind, request.path_params["item_id"], await read_json(request))
    return JSONResponse(view(changed))


async def delete_item(request: Request) -> Response:
    """Delete a queue, operator or channel (an operator goes offline first).
    ---
    summary: Delete a queue, operator or channel
    description: >-
      An operator goes offline first (their offers move on, their chats stay or return as their queues say), then
      leaves every queue, and their queue `operator.<id>` is deleted.
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - {name: kind, in: path, required: true, schema: {type: string, enum: [queues, operators, channels]}}
    responses:
      "204": {description: deleted}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    await admin_.delete(kind_of(request), request.path_params["item_id"])
    return Response(status_code=204)


async def register(request: Request) -> Response:
    """Register a channel with its messenger (e.g. set its webhook) and record the outcome on it.
    ---
    summary: Register a channel with its messenger and record the outcome on it
    description: >-
      Telegram `setWebhook` with PUBLIC_BASE_URL and the secret (generated when absent), or polling; Messenger
      subscribes the page. A messenger's refusal is recorded in `registration` (`ok: false`), still answered 200;
      providers that need no registration record `ok: true`.
    tags: [admin]
    security: [{adminToken: []}]
    responses:
      "200":
        description: the channel with its `registration`
        content: {application/json: {schema: {$ref: "#/components/schemas/Channel"}}}
      "400":
        description: "`unknown_provider`: the channel's provider is not installed"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404": {$ref: "#/components/responses/AdminNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    return JSONResponse(channel_view(await admin_.register(request.path_params["item_id"])))


async def parked(request: Request) -> Response:
    """Messages that exhausted their retries, with the cause (listing does not consume them).
    ---
    summary: Messages that exhausted their retries, with the cause (listing does not consume them)
    tags: [admin]
    security: [{adminToken: []}]
    parameters:
      - name: queue
        in: query
        description: "one consumer queue's lot (`router.received` means every partition); absent: every lot"
        schema: {type: string}
      - name: limit
        in: query
        description: at most 1000 are answered
        schema: {type: integer, minimum: 0, default: 100}
    responses:
      "200":
        description: the parked messages
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/Parked"}}
                next_cursor: {type: string, nullable: true, enum: [null]}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    limit = request.query_params.get("limit", "100")
    if not limit.isdigit():
        raise ApiError(400, "invalid_query", "limit must be a whole number")
    items = await admin_.parking.list(request.query_params.get("queue"), min(int(limit), 1000))
    return JSONResponse({"items": items, "next_cursor": None})


async def parked_one(request: Request) -> Response:
    """One parked message, with every header it carries (the broker's dead-letter history included).
    ---
    summary: One parked message, with every header it carries (the broker's `x-death` included)
    tags: [admin]
    security: [{adminToken: []}]
    responses:
      "200":
        description: the parked message and its headers
        content:
          application/json:
            schema:
              allOf:
                - {$ref: "#/components/schemas/Parked"}
                - type: object
                  required: [headers]
                  properties: {headers: {type: object}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "404":
        description: "`not_parked`: no lot holds a message with this id"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    found = await admin_.parking.find(request.path_params["parked_id"])
    if found is None:
        raise ApiError(404, "not_parked", f"no parked message {request.path_params['parked_id']}")
    return JSONResponse(found)


async def replay(request: Request) -> Response:
    """Put parked messages back into their queues, or (`discard`) drop them for good.
    ---
    summary: Put parked messages back into their queues, or drop them for good
    description: >-
      Each goes back to its queue with a fresh attempt count. An empty body replays every parked message.
    tags: [admin]
    security: [{adminToken: []}]
    requestBody:
      required: false
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            properties:
              queue: {type: string, nullable: true, description: "only this consumer queue's lot"}
              ids: {type: array, nullable: true, items: {type: string}, description: only these messages}
              discard: {type: boolean, default: false, description: drop them instead}
    responses:
      "200":
        description: '`{"replayed": n}`, or `{"discarded": n}` with `discard`'
        content:
          application/json:
            schema:
              type: object
              properties:
                replayed: {type: integer, minimum: 0}
                discarded: {type: integer, minimum: 0}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/AdminForbidden"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    admin_ = await admin(request)
    body = parse_body(ReplayBody, await read_json(request) if await request.body() else {})
    ids = set(body.ids) if body.ids is not None else None
    count = await admin_.parking.replay(body.queue, ids, discard=body.discard)
    return JSONResponse({"discarded" if body.discard else "replayed": count})


KINDS = "{kind:str}"
routes = [
    Route("/api/admin/queues", create_queue, methods=["POST"]),
    Route("/api/admin/operators", create_operator, methods=["POST"]),
    Route("/api/admin/channels", create_channel, methods=["POST"]),
    Route("/api/admin/channels/{item_id}/register", register, methods=["POST"]),
    Route("/api/admin/parked", parked, methods=["GET"]),
    Route("/api/admin/parked/replay", replay, methods=["POST"]),
    Route("/api/admin/parked/{parked_id}", parked_one, methods=["GET"]),
    Route(f"/api/admin/{KINDS}", list_items, methods=["GET"]),
    Route(f"/api/admin/{KINDS}/{{item_id}}", get_item, methods=["GET"]),
    Route(f"/api/admin/{KINDS}/{{item_id}}", patch_item, methods=["PATCH"]),
    Route(f"/api/admin/{KINDS}/{{item_id}}", delete_item, methods=["DELETE"]),
]
