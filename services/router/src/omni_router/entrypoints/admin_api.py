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
    """Create a queue."""
    admin_ = await admin(request)
    queue = await admin_.create_queue(parse_body(QueueSettings, await read_json(request)))
    return JSONResponse(queue_view(queue), status_code=201)


async def create_operator(request: Request) -> Response:
    """Create an operator; the answer carries their token, this once."""
    admin_ = await admin(request)
    operator, token = await admin_.create_operator(parse_body(OperatorSettings, await read_json(request)))
    return JSONResponse({**operator_view(operator), "token": token}, status_code=201)


async def create_channel(request: Request) -> Response:
    """Create a channel (secrets are write-only)."""
    admin_ = await admin(request)
    channel = await admin_.create_channel(parse_body(ChannelSettings, await read_json(request)))
    return JSONResponse(channel_view(channel), status_code=201)


async def list_items(request: Request) -> Response:
    """The queues, operators or channels."""
    admin_ = await admin(request)
    items = await admin_.list(kind_of(request))
    return JSONResponse({"items": [view(item) for item in items], "next_cursor": None})


async def get_item(request: Request) -> Response:
    """One queue, operator or channel."""
    admin_ = await admin(request)
    return JSONResponse(view(await admin_.get(kind_of(request), request.path_params["item_id"])))


async def patch_item(request: Request) -> Response:
    """Change a queue, operator or channel (checked as creation checks it; a refused change changes nothing)."""
    admin_ = await admin(request)
    kind = kind_of(request)
    await admin_.get(kind, request.path_params["item_id"])  # 404 before the body is read
    changed = await admin_.change(kind, request.path_params["item_id"], await read_json(request))
    return JSONResponse(view(changed))


async def delete_item(request: Request) -> Response:
    """Delete a queue, operator or channel (an operator goes offline first)."""
    admin_ = await admin(request)
    await admin_.delete(kind_of(request), request.path_params["item_id"])
    return Response(status_code=204)


async def register(request: Request) -> Response:
    """Register a channel with its messenger (e.g. set its webhook) and record the outcome on it."""
    admin_ = await admin(request)
    return JSONResponse(channel_view(await admin_.register(request.path_params["item_id"])))


async def parked(request: Request) -> Response:
    """Messages that exhausted their retries, with the cause (listing does not consume them)."""
    admin_ = await admin(request)
    limit = request.query_params.get("limit", "100")
    if not limit.isdigit():
        raise ApiError(400, "invalid_query", "limit must be a whole number")
    items = await admin_.parking.list(request.query_params.get("queue"), min(int(limit), 1000))
    return JSONResponse({"items": items, "next_cursor": None})


async def parked_one(request: Request) -> Response:
    """One parked message, with every header it carries (the broker's dead-letter history included)."""
    admin_ = await admin(request)
    found = await admin_.parking.find(request.path_params["parked_id"])
    if found is None:
        raise ApiError(404, "not_parked", f"no parked message {request.path_params['parked_id']}")
    return JSONResponse(found)


async def replay(request: Request) -> Response:
    """Put parked messages back into their queues, or (`discard`) drop them for good."""
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
