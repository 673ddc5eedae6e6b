"""The admin HTTP API: queues, operators, channels and the parking lots (API.md, "Router: admin API")."""

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_providers import Channel, ProviderRegistry, Registrar, Registration, UnknownProvider
from omni_providers.thirdparty import is_http_url
from omni_router.auth import new_token, require_admin, token_hash
from omni_router.capacity import fresh_capacity
from omni_router.offers import Offers
from omni_router.routing import RoutingRule
from omni_router.store import now
from omni_router.views import channel_view, operator_view, queue_view
from omni_runtime.broker import Broker
from omni_runtime.database import Database, Document
from omni_runtime.errors import PermanentError, RetryLater
from omni_runtime.ids import new_id
from omni_runtime.parking import find_parked, list_parked, replay_parked
from omni_runtime.topology import operator_queue
from omni_runtime.web import ApiError, parse_body, read_json


class QueueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    routing_rule: str = "to_all"
    # Whole minutes as before; fractions are accepted too (0.5 is 30 s), which is what tests use.
    completion_timeout_minutes: int | float | None = Field(default=None, gt=0, le=60 * 24 * 30)
    operator_ids: list[str] = Field(default_factory=list)
    # What happens to the chats an operator holds when they go offline: kept, or back to the queue.
    on_operator_offline: Literal["keep", "return"] = "keep"
    # How long an offer waits for an accept before it moves on; unset: OFFER_TIMEOUT_SECONDS.
    offer_timeout_seconds: float | None = Field(default=None, gt=0, le=24 * 3600)


class OperatorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    max_chats: int = Field(default=5, ge=1, le=1000)
    role: Literal["operator", "supervisor"] = "operator"


class OperatorChange(OperatorBody):
    """What PATCH validates: the operator as created, plus the status an admin may set."""

    status: Literal["online", "busy", "offline"] = "offline"


class ChannelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    provider: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")
    source: str = Field(min_length=1, max_length=256)
    queue_id: str
    settings: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue: str | None = None
    ids: list[str] | None = None
    discard: bool = False


THIRD_PARTY_SETTINGS = ("secret", "outgoing_url")

Endpoint = Callable[[Request], Awaitable[Response]]


class Admin:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        registry: ProviderRegistry,
        rules: dict[str, RoutingRule],
        http: httpx.AsyncClient,
        offers: Offers | None = None,
    ) -> None:
        self.http = http
        self.db = db
        self.broker = broker
        self.registry = registry
        self.rules = rules
        self.offers = offers

    async def changed(self, kind: str, before: Document, after: Document) -> None:
        """Routing follows the admin: an operator's status or capacity, a queue's operators or rule."""
        self.forget_settings()
        if self.offers is None:
            return
        if kind == "operators":
            if after.get("status") == "offline" and before.get("status") != "offline":
                await self.offers.operator_offline([after["_id"]])
            elif after.get("status") == "online":
                await self.offers.operator_online(after["_id"])
        elif kind == "queues":
            await self.offers.dispatch([after["_id"]])

    async def create_queue(self, body: QueueBody) -> Document:
        await self._check_queue(body.routing_rule, body.operator_ids)
        queue = {"_id": new_id(), **body.model_dump(), "created_at": now()}
        await self.db.queues.insert_one(queue)
        return queue

    async def _check_queue(self, rule: str | None, operator_ids: list[str] | None) -> None:
        if rule is not None and rule not in self.rules:
            raise ApiError(400, "invalid_body", f"routing_rule {rule!r} is unknown; known: {sorted(self.rules)}")
        if operator_ids:
            found = {op["_id"] async for op in self.db.operators.find({"_id": {"$in": operator_ids}}, {"_id": 1})}
            missing = sorted(set(operator_ids) - found)
            if missing:
                raise ApiError(400, "invalid_body", f"unknown operator ids: {', '.join(missing)}")

    async def create_operator(self, body: OperatorBody) -> tuple[Document, str]:
        token = new_token()
        operator = {
            "_id": new_id(),
            **body.model_dump(),
            "status": "offline",
            "token_hash": token_hash(token),
            **fresh_capacity(),
            "created_at": now(),
        }
        # The queue first: no notification can ever be published for an operator without one.
        await self.broker.declare_queue(operator_queue(operator["_id"]))
        await self.db.operators.insert_one(operator)
        return operator, token

    async def create_channel(self, body: ChannelBody) -> Document:
        self._check_settings(body)
        await self._check_channel_queue(body.queue_id)
        channel = {"_id": new_id(), **body.model_dump(), "created_at": now()}
        try:
            await self.db.channels.insert_one(channel)
        except DuplicateKeyError:
            raise ApiError(409, "duplicate_channel", f"a {body.provider} channel with this source exists") from None
        return channel

    def _check_settings(self, body: ChannelBody) -> None:
        try:
            self.registry.get(body.provider)
        except UnknownProvider as exc:
            raise ApiError(400, "invalid_body", str(exc)) from None
        if not self.registry.is_builtin(body.provider):
            missing = [k for k in THIRD_PARTY_SETTINGS if not body.settings.get(k)]
            if missing:
                raise ApiError(400, "invalid_body", f"settings need {', '.join(missing)}")
            if not is_http_url(body.settings["outgoing_url"]):
                raise ApiError(400, "invalid_body", "settings.outgoing_url must be an http or https URL")

    async def _check_channel_queue(self, queue_id: str) -> None:
        if await self.db.queues.find_one({"_id": queue_id}, {"_id": 1}) is None:
            raise ApiError(400, "invalid_body", f"unknown queue_id {queue_id}")

    async def changes(self, kind: str, current: Document, changes: Any) -> Document:
        """A PATCH body checked as creation checks it, applied to `current`: the fields to `$set`, or ApiError."""
        if not isinstance(changes, dict) or not changes:
            raise ApiError(400, "invalid_body", "send an object with the fields to change")
        unknown = sorted(set(changes) - PATCHABLE[kind])
        if unknown:
            raise ApiError(400, "invalid_body", f"cannot change: {', '.join(unknown)}")
        if kind == "channels" and isinstance(changes.get("settings"), dict):
            # Secrets are write-only: keep the stored ones that the change does not name.
            changes = {**changes, "settings": {**(current.get("settings") or {}), **changes["settings"]}}
        model = PATCH_MODELS[kind]
        merged = {k: v for k, v in current.items() if k in model.model_fields} | changes
        checked = parse_body(model, merged)
        if isinstance(checked, QueueBody):
            await self._check_queue(
                checked.routing_rule if "routing_rule" in changes else None,
                checked.operator_ids if "operator_ids" in changes else None,
            )
        elif isinstance(checked, ChannelBody):
            if "settings" in changes:
                self._check_settings(checked)
            if "queue_id" in changes:
                await self._check_channel_queue(checked.queue_id)
        return checked.model_dump(include=set(changes))

    async def register(self, channel_id: str) -> Document:
        """The reference's Register: connect the channel to its messenger and record the outcome on it."""
        doc = await _one(self.db, "channels", channel_id)
        channel = Channel.from_document(doc)
        try:
            provider = self.registry.get(channel.provider)
        except UnknownProvider as exc:
            raise ApiError(400, "unknown_provider", str(exc)) from None
        if isinstance(provider, Registrar):
            try:
                outcome = await provider.register(self.http, channel)
            except (RetryLater, PermanentError) as exc:
                outcome = Registration(ok=False, detail=str(exc))
        else:
            outcome = Registration(ok=True, detail=f"{channel.provider} channels need no registration")
        update: dict[str, Any] = {"registration": {"ok": outcome.ok, "detail": outcome.detail, "at": now().isoformat()}}
        for key, value in outcome.settings_update.items():
            update[f"settings.{key}"] = value
        await self.db.channels.update_one({"_id": channel_id}, {"$set": update})
        self.forget_settings()
        return await _one(self.db, "channels", channel_id)

    def forget_settings(self) -> None:
        """A channel or queue changed: this router reads them again (others within SETTINGS_TTL_SECONDS)."""
        if self.offers is not None:
            self.offers.store.forget_settings()


COLLECTIONS = {"queues": queue_view, "operators": operator_view, "channels": channel_view}
PATCHABLE = {
    "queues": {
        "name",
        "routing_rule",
        "completion_timeout_minutes",
        "operator_ids",
        "on_operator_offline",
        "offer_timeout_seconds",
    },
    "operators": {"name", "max_chats", "role", "status"},
    "channels": {"name", "queue_id", "settings", "is_active"},
}
# PATCH validates the stored object with the change applied, with the model creation uses.
PATCH_MODELS: dict[str, type[BaseModel]] = {"queues": QueueBody, "operators": OperatorChange, "channels": ChannelBody}


def admin_routes(admin_of: Callable[[], Admin], admin_token: Any) -> list[Route]:
    def guarded(handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            await require_admin(request, admin_of().db, admin_token)
            return await handler(request)

        return endpoint

    async def create_queue(request: Request) -> Response:
        queue = await admin_of().create_queue(parse_body(QueueBody, await read_json(request)))
        return JSONResponse(queue_view(queue), status_code=201)

    async def create_operator(request: Request) -> Response:
        operator, token = await admin_of().create_operator(parse_body(OperatorBody, await read_json(request)))
        return JSONResponse({**operator_view(operator), "token": token}, status_code=201)

    async def create_channel(request: Request) -> Response:
        channel = await admin_of().create_channel(parse_body(ChannelBody, await read_json(request)))
        return JSONResponse(channel_view(channel), status_code=201)

    async def list_items(request: Request) -> Response:
        kind = request.path_params["kind"]
        view = COLLECTIONS[kind]
        docs = [d async for d in admin_of().db[kind].find({}).sort("_id", 1).limit(1000)]
        return JSONResponse({"items": [view(d) for d in docs], "next_cursor": None})

    async def get_item(request: Request) -> Response:
        kind = request.path_params["kind"]
        return JSONResponse(COLLECTIONS[kind](await _one(admin_of().db, kind, request.path_params["item_id"])))

    async def patch_item(request: Request) -> Response:
        kind, item_id = request.path_params["kind"], request.path_params["item_id"]
        admin = admin_of()
        current = await _one(admin.db, kind, item_id)
        changes = await admin.changes(kind, current, await read_json(request))
        await admin.db[kind].update_one({"_id": item_id}, {"$set": changes})
        updated = await _one(admin.db, kind, item_id)
        await admin.changed(kind, current, updated)
        return JSONResponse(COLLECTIONS[kind](updated))

    async def delete_item(request: Request) -> Response:
        kind, item_id = request.path_params["kind"], request.path_params["item_id"]
        admin = admin_of()
        current = await _one(admin.db, kind, item_id)
        if kind == "operators":
            # Leaving for good is going offline first: offers move on, chats return where queues say so.
            await admin.db.operators.update_one({"_id": item_id}, {"$set": {"status": "offline"}})
            await admin.changed(kind, current, {**current, "status": "offline"})
        await admin.db[kind].delete_one({"_id": item_id})
        if kind == "operators":
            await admin.db.queues.update_many({"operator_ids": item_id}, {"$pull": {"operator_ids": item_id}})
            await admin.broker.delete_queue(operator_queue(item_id).name)
        admin.forget_settings()
        return Response(status_code=204)

    async def register(request: Request) -> Response:
        channel = await admin_of().register(request.path_params["item_id"])
        return JSONResponse(channel_view(channel))

    async def parked(request: Request) -> Response:
        limit = request.query_params.get("limit", "100")
        if not limit.isdigit():
            raise ApiError(400, "invalid_query", "limit must be a whole number")
        found = await list_parked(admin_of().broker, request.query_params.get("queue"), min(int(limit), 1000))
        return JSONResponse({"items": [p.view() for p in found], "next_cursor": None})

    async def parked_one(request: Request) -> Response:
        """One parked message, with every header it carries (the broker's dead-letter history included)."""
        found = await find_parked(admin_of().broker, request.path_params["parked_id"])
        if found is None:
            raise ApiError(404, "not_parked", f"no parked message {request.path_params['parked_id']}")
        return JSONResponse(found.detail())

    async def replay(request: Request) -> Response:
        body = parse_body(ReplayBody, await read_json(request) if await request.body() else {})
        ids = set(body.ids) if body.ids is not None else None
        count = await replay_parked(admin_of().broker, body.queue, ids, discard=body.discard)
        return JSONResponse({"discarded" if body.discard else "replayed": count})

    kinds = "{kind:str}"
    return [
        Route("/api/admin/queues", guarded(create_queue), methods=["POST"]),
        Route("/api/admin/operators", guarded(create_operator), methods=["POST"]),
        Route("/api/admin/channels", guarded(create_channel), methods=["POST"]),
        Route("/api/admin/channels/{item_id}/register", guarded(register), methods=["POST"]),
        Route("/api/admin/parked", guarded(parked), methods=["GET"]),
        Route("/api/admin/parked/replay", guarded(replay), methods=["POST"]),
        Route("/api/admin/parked/{parked_id}", guarded(parked_one), methods=["GET"]),
        Route(f"/api/admin/{kinds}", guarded(_known(list_items)), methods=["GET"]),
        Route(f"/api/admin/{kinds}/{{item_id}}", guarded(_known(get_item)), methods=["GET"]),
        Route(f"/api/admin/{kinds}/{{item_id}}", guarded(_known(patch_item)), methods=["PATCH"]),
        Route(f"/api/admin/{kinds}/{{item_id}}", guarded(_known(delete_item)), methods=["DELETE"]),
    ]


def _known(handler: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if request.path_params["kind"] not in COLLECTIONS:
            raise ApiError(404, "not_found", f"no such collection: {request.path_params['kind']}")
        return await handler(request)

    return endpoint


async def _one(db: Database, kind: str, item_id: str) -> Document:
    doc = await db[kind].find_one({"_id": item_id})
    if doc is None:
        raise ApiError(404, "not_found", f"no {kind[:-1]} {item_id}")
    return doc
