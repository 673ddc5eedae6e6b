"""The operator HTTP API (API.md, "Router: operator API"): parse, call the desk, answer."""

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_contracts import Attachment
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


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, max_length=65_536)
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)


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
    """The operator's status."""
    operator = await signed_in(request)
    return JSONResponse({"status": operator.status})


async def put_status(request: Request) -> Response:
    """Go online, busy or offline."""
    operator = await signed_in(request)
    body = parse_body(StatusBody, await read_json(request))
    if body.status not in OPERATOR_STATUSES:
        raise ApiError(400, "invalid_body", f"status must be one of {', '.join(OPERATOR_STATUSES)}")
    await services(request).desk.set_status(operator, body.status)
    return JSONResponse({"status": body.status})


async def list_chats(request: Request) -> Response:
    """The chats the operator may see, newest first (open ones, or ?status=)."""
    operator = await signed_in(request)
    limit = int_param(request, "limit", 50, 1, 200)
    status = request.query_params.get("status")
    if status not in (None, "", "new", "assigned", "closed"):
        raise ApiError(400, "invalid_query", "status must be new, assigned or closed")
    page = await services(request).desk.chats(operator, status or None, request.query_params.get("cursor"), limit)
    return JSONResponse(
        {"items": [chat_view(c, unread_count=n) for c, n in page.items], "next_cursor": page.next_cursor}
    )


async def get_chat(request: Request) -> Response:
    """One chat the operator may see."""
    operator = await signed_in(request)
    chat, unread = await services(request).desk.chat(request.path_params["chat_id"], operator)
    return JSONResponse(chat_view(chat, unread_count=unread))


async def unread_chats(request: Request) -> Response:
    """How many open chats the operator may see have unread customer messages."""
    operator = await signed_in(request)
    counts = await services(request).desk.unread(operator)
    return JSONResponse({"count": sum(1 for n in counts.values() if n)})


async def unread_messages(request: Request) -> Response:
    """How many customer messages in the open chats the operator may see are unread."""
    operator = await signed_in(request)
    return JSONResponse({"count": sum((await services(request).desk.unread(operator)).values())})


async def accept(request: Request) -> Response:
    """Take a chat offered to the operator; the first accept wins."""
    operator = await signed_in(request)
    return JSONResponse(chat_view(await services(request).desk.accept(request.path_params["chat_id"], operator)))


async def read(request: Request) -> Response:
    """Mark the chat's customer messages read."""
    operator = await signed_in(request)
    marked = await services(request).desk.mark_read(request.path_params["chat_id"], operator)
    return JSONResponse({"marked": marked})


async def conversation(request: Request) -> Response:
    """A page of the chat's messages, older ones with ?before=."""
    operator = await signed_in(request)
    desk = services(request).desk
    chat = await desk.visible_chat(request.path_params["chat_id"], operator)
    limit = int_param(request, "limit", 50, 1, 200)
    page = await desk.conversation(chat, request.query_params.get("before") or None, limit)
    return JSONResponse({"items": [message_view(m) for m in page.items], "next_cursor": page.next_cursor})


async def send(request: Request) -> Response:
    """Reply in the chat (202: queued for the messenger); a repeat under its Idempotency-Key gets the first answer."""
    operator = await signed_in(request)
    body = parse_body(SendBody, await read_json(request))
    if not (body.text and body.text.strip()) and not body.attachments:
        raise ApiError(400, "invalid_body", "a reply needs text or attachments")
    key = idempotency_key(request)
    message, repeat = await services(request).replies.send(
        request.path_params["chat_id"],
        operator,
        body.text,
        body.attachments,
        key=key,
        request=body.model_dump(mode="json"),
    )
    # What a reply is first answered with, answered again to a repeat of its key whatever became of it since.
    headers = {REPLAYED_HEADER: "true"} if repeat else None
    return JSONResponse({"id": message.id, "status": "queued"}, status_code=202, headers=headers)


async def close(request: Request) -> Response:
    """Close the chat."""
    operator = await signed_in(request)
    return JSONResponse(chat_view(await services(request).desk.close(request.path_params["chat_id"], operator)))


async def decline(request: Request) -> Response:
    """Turn down an offer; it moves on, and the chat is not offered to this operator again."""
    operator = await signed_in(request)
    return JSONResponse(chat_view(await services(request).desk.decline(request.path_params["chat_id"], operator)))


async def transfer(request: Request) -> Response:
    """Hand the chat to another operator or queue."""
    operator = await signed_in(request)
    body = parse_body(TransferBody, await read_json(request))
    chat = await services(request).desk.transfer(
        request.path_params["chat_id"], operator, body.operator_id, body.queue_id
    )
    return JSONResponse(chat_view(chat))


async def actions(request: Request) -> Response:
    """What the operator may do with the chat now."""
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
