"""The operator HTTP API (API.md, "Router: operator API"): parse, call the desk, answer."""

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_contracts import Attachment, Template
from omni_router.domain.model import OPERATOR_STATUSES
from omni_router.domain.views import chat_view, message_view
from omni_router.entrypoints.context import services, signed_in
from omni_runtime.web import ApiError, parse_body, read_json

REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator_id: str | None = None
    queue_id: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "TransferBody":
        if (self.operator_id is None) == (self.queue_id is None):
            raise ValueError("give exactly one of operator_id and queue_id")
        return self


class TemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512)
    language: str | None = Field(default=None, min_length=1, max_length=16)
    parameters: list[str] = Field(default_factory=list, max_length=100)

    def template(self) -> Template:
        return Template(name=self.name, language=self.language, parameters=tuple(self.parameters))


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, max_length=65_536)
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)
    template: TemplateBody | None = None


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_query", f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def idempotency_key(request: Request) -> str | None:
    """The request's key, if it gave one: 1 to 255 visible ASCII characters (a UUID, say), else 400."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all("!" <= char <= "~" for char in key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters, no spaces",
        )
    return key


async def get_status(request: Request) -> Response:
    """The operator's status.
    ---
    summary: The operator's status
    tags: [operator]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: "`online`, `busy` or `offline`"
        content:
          application/json:
            schema:
              type: object
              required: [status]
              properties: {status: {type: string, enum: [online, busy, offline]}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    return JSONResponse({"status": operator.status})


async def put_status(request: Request) -> Response:
    """Go online, busy or offline.
    ---
    summary: Go online, busy or offline
    description: >-
      Online, the operator is offered what waits in their queues; offline, their offers move on and the chats they
      hold stay or return to the queue (the queue's `on_operator_offline`).
    tags: [operator]
    security: [{operatorToken: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [status]
            properties: {status: {type: string, enum: [online, busy, offline]}}
    responses:
      "200":
        description: the status now
        content:
          application/json:
            schema:
              type: object
              required: [status]
              properties: {status: {type: string, enum: [online, busy, offline]}}
      "400": {$ref: "#/components/responses/InvalidBody"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    body = parse_body(StatusBody, await read_json(request))
    if body.status not in OPERATOR_STATUSES:
        raise ApiError(400, "invalid_body", f"status must be one of {', '.join(OPERATOR_STATUSES)}")
    await services(request).desk.set_status(operator, body.status)
    return JSONResponse({"status": body.status})


async def list_chats(request: Request) -> Response:
    """The chats the operator may see, newest first (open ones, or ?status=).
    ---
    summary: The chats offered to or held by the operator (supervisors see all), newest first
    tags: [chats]
    security: [{operatorToken: []}]
    parameters:
      - name: status
        in: query
        description: "`new`, `assigned` or `closed`; absent or empty: the open ones (`new` and `assigned`)"
        schema: {type: string, enum: ["", new, assigned, closed]}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 50}}
      - {name: cursor, in: query, description: the `next_cursor` of the page before, schema: {type: string}}
      - {name: label, in: query, description: only the chats carrying this label, schema: {type: string}}
      - name: operator_id
        in: query
        description: "supervisors: the chats this operator was offered or holds (GetChats for a given operator)"
        schema: {type: string}
    responses:
      "200":
        description: a page of chats
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/Chat"}}
                next_cursor: {type: string, nullable: true}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403":
        description: "`forbidden`: `operator_id` given by an operator who is not a supervisor"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "422":
        description: "`unknown_labels`: `label` names no label"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    limit = int_param(request, "limit", 50, 1, 200)
    query = request.query_params
    status = query.get("status")
    if status not in (None, "", "new", "assigned", "closed"):
        raise ApiError(400, "invalid_query", "status must be new, assigned or closed")
    page = await services(request).workplace.chats(
        operator,
        status or None,
        query.get("cursor"),
        limit,
        label=query.get("label") or None,
        of_operator=query.get("operator_id") or None,
    )
    return JSONResponse(
        {"items": [chat_view(c, unread_count=n) for c, n in page.items], "next_cursor": page.next_cursor}
    )


async def get_chat(request: Request) -> Response:
    """One chat the operator may see.
    ---
    summary: One chat the operator may see
    tags: [chats]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the chat
        content: {application/json: {schema: {$ref: "#/components/schemas/Chat"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    chat, unread = await services(request).desk.chat(request.path_params["chat_id"], operator)
    return JSONResponse(chat_view(chat, unread_count=unread))


async def unread_chats(request: Request) -> Response:
    """How many open chats the operator may see have unread customer messages.
    ---
    summary: How many open chats the operator may see have unread customer messages
    tags: [chats]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: '`{"count": n}`'
        content: {application/json: {schema: {$ref: "#/components/schemas/Count"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    counts = await services(request).desk.unread(operator)
    return JSONResponse({"count": sum(1 for n in counts.values() if n)})


async def unread_messages(request: Request) -> Response:
    """How many customer messages in the open chats the operator may see are unread.
    ---
    summary: How many customer messages in the open chats the operator may see are unread
    description: Accepting a chat does not mark its messages read; `POST /api/chats/{chat_id}/read` does.
    tags: [chats]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: '`{"count": n}`'
        content: {application/json: {schema: {$ref: "#/components/schemas/Count"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    return JSONResponse({"count": sum((await services(request).desk.unread(operator)).values())})


async def accept(request: Request) -> Response:
    """Take a chat offered to the operator; the first accept wins.
    ---
    summary: Take a chat offered to the operator; the first accept wins
    description: >-
      The others it was offered to hear `chat.revoked`. Accepting a chat the operator already holds answers it
      again. A supervisor may take any new chat.
    tags: [chats]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the chat, now held by the operator
        content: {application/json: {schema: {$ref: "#/components/schemas/Chat"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/ActionNotAllowed"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "409": {$ref: "#/components/responses/ChatConflict"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    return JSONResponse(chat_view(await services(request).desk.accept(request.path_params["chat_id"], operator)))


async def read(request: Request) -> Response:
    """Mark the chat's customer messages read.
    ---
    summary: Mark the chat's customer messages read
    tags: [chats]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: how many were unread
        content:
          application/json:
            schema:
              type: object
              required: [marked]
              properties: {marked: {type: integer, minimum: 0}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    marked = await services(request).desk.mark_read(request.path_params["chat_id"], operator)
    return JSONResponse({"marked": marked})


async def conversation(request: Request) -> Response:
    """A page of the chat's messages, older ones with ?before=.
    ---
    summary: A page of the chat's messages, oldest first within the page
    tags: [chats]
    security: [{operatorToken: []}]
    parameters:
      - name: before
        in: query
        description: the `next_cursor` of the page before; the page ends before it (older messages)
        schema: {type: string}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 50}}
    responses:
      "200":
        description: the newest messages (before `before`), oldest first
        content:
          application/json:
            schema:
              type: object
              required: [items, next_cursor]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/Message"}}
                next_cursor: {type: string, nullable: true, description: "`before` for the older page"}
      "400": {$ref: "#/components/responses/InvalidQuery"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    desk = services(request).desk
    chat = await desk.readable_chat(request.path_params["chat_id"], operator)
    limit = int_param(request, "limit", 50, 1, 200)
    page = await desk.conversation(chat, request.query_params.get("before") or None, limit)
    return JSONResponse({"items": [message_view(m) for m in page.items], "next_cursor": page.next_cursor})


async def send(request: Request) -> Response:
    """Reply in the chat (202: queued for the messenger); a repeat under its Idempotency-Key gets the first answer.
    ---
    summary: Reply to the customer in the chat
    description: >-
      The reply is stored, then queued for the messenger; its `status` moves on to `sent`, `delivered`, `read` or
      `failed` (`message.status` notifications). Replying to a chat offered to the operator accepts it first. A
      repeat by the same operator within 24 h under the same `Idempotency-Key` answers the first answer again,
      with `Idempotent-Replayed: true`, and stores nothing new.
    tags: [chats]
    security: [{operatorToken: []}]
    parameters:
      - name: Idempotency-Key
        in: header
        description: 1 to 255 visible ASCII characters, no spaces (a UUID, say)
        schema: {type: string, minLength: 1, maxLength: 255, pattern: "^[!-~]+$"}
    requestBody:
      required: true
      description: >-
        text, attachments, or both; or a template alone (WhatsApp Cloud and Twilio, outside the 24-hour window).
        Attachments by `file_id` are files this operator uploaded with `POST /api/files`.
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            properties:
              text: {type: string, nullable: true, maxLength: 65536}
              attachments:
                type: array
                maxItems: 10
                items:
                  type: object
                  description: "a file of ours (`file_id`) or one the messenger fetches (`url`, `provider_file_id`)"
                  properties:
                    file_id: {type: string, nullable: true, minLength: 1, maxLength: 64}
                    url: {type: string, nullable: true}
                    provider_file_id: {type: string, nullable: true}
                    content_type: {type: string, nullable: true}
                    file_name: {type: string, nullable: true}
                    size: {type: integer, nullable: true}
              template:
                type: object
                nullable: true
                additionalProperties: false
                required: [name]
                description: >-
                  WhatsApp Cloud: the template's name and language code (`en_US`); Twilio: the Content SID (`HX...`)
                  as `name`. `parameters`: the body's variables in order.
                properties:
                  name: {type: string, minLength: 1, maxLength: 512}
                  language: {type: string, nullable: true, minLength: 1, maxLength: 16}
                  parameters: {type: array, maxItems: 100, items: {type: string}}
    responses:
      "202":
        description: stored and queued for the messenger
        headers:
          Idempotent-Replayed:
            description: "`true` when this answers a repeat of the key"
            schema: {type: string, enum: ["true"]}
        content:
          application/json:
            schema:
              type: object
              required: [id, status]
              properties:
                id: {type: string, description: the reply's message id}
                status: {type: string, enum: [queued]}
      "400":
        description: "`malformed_json`, `invalid_body` (no text and no attachments), or `invalid_idempotency_key`"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/ActionNotAllowed"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "409":
        description: >-
          `chat_closed`, `chat_taken` (another operator holds it), `at_capacity` (accepting an offer),
          `contact_missing`, or `idempotency_key_busy` (racing requests under the key; retry)
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "422":
        description: >-
          `idempotency_key_reused` (the key came with another chat or another body); `file_not_found` (a `file_id`
          this operator did not upload, nor sees a chat of); `template_required` (free text outside the
          messenger's window: WhatsApp Cloud and Twilio take only a template), `reply_window_closed` (Messenger
          after 24 h without the HUMAN_AGENT tag, or after 7 days), both with `window_ends_at` (when free text
          ended; null when the customer never wrote); `templates_unsupported` (a template on a messenger without
          templates)
        content:
          application/json:
            schema:
              allOf:
                - {$ref: "#/components/schemas/Error"}
                - type: object
                  properties:
                    window_ends_at: {type: string, format: date-time, nullable: true}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    body = parse_body(SendBody, await read_json(request))
    if body.template is not None and (body.text or body.attachments):
        raise ApiError(400, "invalid_body", "a template reply carries no text and no attachments")
    if not (body.text and body.text.strip()) and not body.attachments and body.template is None:
        raise ApiError(400, "invalid_body", "a reply needs text, attachments or a template")
    key = idempotency_key(request)
    message, repeat = await services(request).replies.send(
        request.path_params["chat_id"],
        operator,
        body.text,
        body.attachments,
        template=body.template.template() if body.template is not None else None,
        key=key,
        request=body.model_dump(mode="json"),
    )
    # What a reply is first answered with, answered again to a repeat of its key whatever became of it since.
    headers = {REPLAYED_HEADER: "true"} if repeat else None
    return JSONResponse({"id": message.id, "status": "queued"}, status_code=202, headers=headers)


async def close(request: Request) -> Response:
    """Close the chat.
    ---
    summary: Close the chat
    description: Whoever it was offered to or held by hears `chat.closed` (`closed_by_operator`).
    tags: [chats]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the closed chat
        content: {application/json: {schema: {$ref: "#/components/schemas/Chat"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/ActionNotAllowed"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "409": {$ref: "#/components/responses/ChatConflict"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    return JSONResponse(chat_view(await services(request).desk.close(request.path_params["chat_id"], operator)))


async def decline(request: Request) -> Response:
    """Turn down an offer; it moves on, and the chat is not offered to this operator again.
    ---
    summary: Turn down an offer; it moves on and is not offered to this operator again
    tags: [chats]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the chat after the offer moved on
        content: {application/json: {schema: {$ref: "#/components/schemas/Chat"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/ActionNotAllowed"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "409":
        description: "`not_offered`: the chat is not offered to this operator; `chat_changed`: read it again"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    return JSONResponse(chat_view(await services(request).desk.decline(request.path_params["chat_id"], operator)))


async def transfer(request: Request) -> Response:
    """Hand the chat to another operator or queue.
    ---
    summary: Hand the chat to another operator or queue
    description: >-
      To an operator: they hold it at once if online with a free unit of `max_chats`. To a queue: it is offered
      there by the queue's rule. Only the chat's holder or a supervisor may transfer it.
    tags: [chats]
    security: [{operatorToken: []}]
    requestBody:
      required: true
      description: exactly one of `operator_id` and `queue_id`
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            properties:
              operator_id: {type: string, nullable: true}
              queue_id: {type: string, nullable: true}
    responses:
      "200":
        description: the chat after the transfer
        content: {application/json: {schema: {$ref: "#/components/schemas/Chat"}}}
      "400":
        description: "`malformed_json`, or `invalid_body`: not exactly one target, or an unknown operator or queue"
        content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/ActionNotAllowed"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "409": {$ref: "#/components/responses/ChatConflict"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    body = parse_body(TransferBody, await read_json(request))
    chat = await services(request).desk.transfer(
        request.path_params["chat_id"], operator, body.operator_id, body.queue_id
    )
    return JSONResponse(chat_view(chat))


async def actions(request: Request) -> Response:
    """What the operator may do with the chat now.
    ---
    summary: What the operator may do with the chat now (none for a closed chat)
    tags: [chats]
    security: [{operatorToken: []}]
    responses:
      "200":
        description: the actions allowed now
        content:
          application/json:
            schema:
              type: object
              required: [actions]
              properties:
                actions:
                  type: array
                  items: {type: string, enum: [accept, decline, read, send, close, transfer]}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/ChatNotFound"}
      "503": {$ref: "#/components/responses/NotReady"}
    """
    operator = await signed_in(request)
    return JSONResponse({"actions": await services(request).desk.actions(request.path_params["chat_id"], operator)})


routes = [
    Route("/api/operator/status", get_status, methods=["GET"]),
    Route("/api/operator/status", put_status, methods=["PUT"]),
    Route("/api/chats", list_chats, methods=["GET"]),
    Route("/api/chats/unread-count", unread_chats, methods=["GET"]),
    Route("/api/messages/unread-count", unread_messages, methods=["GET"]),
    Route("/api/chats/{chat_id}", get_chat, methods=["GET"]),
    Route("/api/chats/{chat_id}/accept", accept, methods=["POST"]),
    Route("/api/chats/{chat_id}/read", read, methods=["POST"]),
    Route("/api/chats/{chat_id}/messages", conversation, methods=["GET"]),
    Route("/api/chats/{chat_id}/messages", send, methods=["POST"]),
    Route("/api/chats/{chat_id}/close", close, methods=["POST"]),
    Route("/api/chats/{chat_id}/decline", decline, methods=["POST"]),
    Route("/api/chats/{chat_id}/transfer", transfer, methods=["POST"]),
    Route("/api/chats/{chat_id}/actions", actions, methods=["GET"]),
]
