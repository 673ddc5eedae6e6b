"""The operator HTTP API (API.md, "Router: operator API"): parse, call the desk, answer."""

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_contracts import Attachment
from omni_router.auth import operator_of
from omni_router.desk import Desk, allowed_actions, visibility
from omni_router.idempotency import REPLAYED_HEADER, claim, fingerprint, idempotency_key
from omni_router.store import OPEN_STATUSES
from omni_router.views import chat_view, message_view
from omni_runtime.database import Document
from omni_runtime.web import ApiError, parse_body, read_json

OPERATOR_STATUSES = ("online", "busy", "offline")


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


Handler = Callable[[Request, Document], Awaitable[Response]]


def operator_routes(desk_of: Callable[[], Desk]) -> list[Route]:
    def authed(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            desk = desk_of()
            operator = await operator_of(request, desk.db)
            return await handler(request, operator)

        return endpoint

    async def get_status(request: Request, operator: Document) -> Response:
        return JSONResponse({"status": operator.get("status", "offline")})

    async def put_status(request: Request, operator: Document) -> Response:
        body = parse_body(StatusBody, await read_json(request))
        if body.status not in OPERATOR_STATUSES:
            raise ApiError(400, "invalid_body", f"status must be one of {', '.join(OPERATOR_STATUSES)}")
        desk = desk_of()
        await desk.db.operators.update_one({"_id": operator["_id"]}, {"$set": {"status": body.status}})
        if body.status == "online":
            await desk.offers.operator_online(operator["_id"])
        elif body.status == "offline":
            await desk.offers.operator_offline([operator["_id"]])
        return JSONResponse({"status": body.status})

    async def list_chats(request: Request, operator: Document) -> Response:
        desk = desk_of()
        limit = int_param(request, "limit", 50, 1, 200)
        status = request.query_params.get("status")
        if status not in (None, "", "new", "assigned", "closed"):
            raise ApiError(400, "invalid_query", "status must be new, assigned or closed")
        query: dict[str, Any] = {**visibility(operator)}
        query["status"] = status if status else {"$in": list(OPEN_STATUSES)}
        cursor = request.query_params.get("cursor")
        if cursor:
            query["_id"] = {"$lt": cursor}
        chats = [c async for c in desk.db.chats.find(query).sort("_id", -1).limit(limit + 1)]
        page = chats[:limit]
        unread = await desk.store.unread_counts([c["_id"] for c in page])
        return JSONResponse(
            {
                "items": [chat_view(c, unread_count=unread.get(c["_id"], 0)) for c in page],
                "next_cursor": page[-1]["_id"] if len(chats) > limit else None,
            }
        )

    async def get_chat(request: Request, operator: Document) -> Response:
        desk = desk_of()
        chat = await desk.visible_chat(request.path_params["chat_id"], operator)
        unread = await desk.store.unread_counts([chat["_id"]])
        return JSONResponse(chat_view(chat, unread_count=unread.get(chat["_id"], 0)))

    async def unread_chats(request: Request, operator: Document) -> Response:
        desk = desk_of()
        ids = await _open_chat_ids(desk, operator)
        return JSONResponse({"count": sum(1 for n in (await desk.store.unread_counts(ids)).values() if n)})

    async def unread_messages(request: Request, operator: Document) -> Response:
        desk = desk_of()
        ids = await _open_chat_ids(desk, operator)
        return JSONResponse({"count": sum((await desk.store.unread_counts(ids)).values())})

    async def accept(request: Request, operator: Document) -> Response:
        chat = await desk_of().accept(request.path_params["chat_id"], operator)
        return JSONResponse(chat_view(chat))

    async def read(request: Request, operator: Document) -> Response:
        marked = await desk_of().mark_read(request.path_params["chat_id"], operator)
        return JSONResponse({"marked": marked})

    async def conversation(request: Request, operator: Document) -> Response:
        desk = desk_of()
        chat = await desk.visible_chat(request.path_params["chat_id"], operator)
        limit = int_param(request, "limit", 50, 1, 200)
        query: dict[str, Any] = {"chat_id": chat["_id"]}
        before = request.query_params.get("before")
        if before:
            query["_id"] = {"$lt": before}
        newest_first = [m async for m in desk.db.messages.find(query).sort("_id", -1).limit(limit + 1)]
        page = list(reversed(newest_first[:limit]))
        return JSONResponse(
            {
                "items": [message_view(m) for m in page],
                "next_cursor": page[0]["_id"] if len(newest_first) > limit else None,
            }
        )

    async def send(request: Request, operator: Document) -> Response:
        body = parse_body(SendBody, await read_json(request))
        if not (body.text and body.text.strip()) and not body.attachments:
            raise ApiError(400, "invalid_body", "a reply needs text or attachments")
        desk, chat_id = desk_of(), request.path_params["chat_id"]
        key = idempotency_key(request)
        message_id = None
        if key is not None:  # claimed only for a valid request: a refused body can be fixed under the same key
            message_id = await claim(desk.db, operator["_id"], key, fingerprint(chat_id, body.model_dump(mode="json")))
        message, repeat = await desk.send(chat_id, operator, body.text, body.attachments, message_id)
        # What a reply is first answered with, answered again to a repeat of its key whatever became of it since.
        headers = {REPLAYED_HEADER: "true"} if repeat else None
        return JSONResponse({"id": message["_id"], "status": "queued"}, status_code=202, headers=headers)

    async def close(request: Request, operator: Document) -> Response:
        chat = await desk_of().close(request.path_params["chat_id"], operator)
        return JSONResponse(chat_view(chat))

    async def decline(request: Request, operator: Document) -> Response:
        chat = await desk_of().decline(request.path_params["chat_id"], operator)
        return JSONResponse(chat_view(chat))

    async def transfer(request: Request, operator: Document) -> Response:
        body = parse_body(TransferBody, await read_json(request))
        chat = await desk_of().transfer(request.path_params["chat_id"], operator, body.operator_id, body.queue_id)
        return JSONResponse(chat_view(chat))

    async def actions(request: Request, operator: Document) -> Response:
        chat = await desk_of().visible_chat(request.path_params["chat_id"], operator)
        return JSONResponse({"actions": allowed_actions(chat, operator)})

    return [
        Route("/api/operator/status", authed(get_status), methods=["GET"]),
        Route("/api/operator/status", authed(put_status), methods=["PUT"]),
        Route("/api/chats", authed(list_chats), methods=["GET"]),
        Route("/api/chats/unread-count", authed(unread_chats), methods=["GET"]),
        Route("/api/messages/unread-count", authed(unread_messages), methods=["GET"]),
        Route("/api/chats/{chat_id}", authed(get_chat), methods=["GET"]),
        Route("/api/chats/{chat_id}/accept", authed(accept), methods=["POST"]),
        Route("/api/chats/{chat_id}/read", authed(read), methods=["POST"]),
        Route("/api/chats/{chat_id}/messages", authed(conversation), methods=["GET"]),
        Route("/api/chats/{chat_id}/messages", authed(send), methods=["POST"]),
        Route("/api/chats/{chat_id}/close", authed(close), methods=["POST"]),
        Route("/api/chats/{chat_id}/decline", authed(decline), methods=["POST"]),
        Route("/api/chats/{chat_id}/transfer", authed(transfer), methods=["POST"]),
        Route("/api/chats/{chat_id}/actions", authed(actions), methods=["GET"]),
    ]


async def _open_chat_ids(desk: Desk, operator: Document) -> list[str]:
    query = {**visibility(operator), "status": {"$in": list(OPEN_STATUSES)}}
    return [c["_id"] async for c in desk.db.chats.find(query, {"_id": 1})]
