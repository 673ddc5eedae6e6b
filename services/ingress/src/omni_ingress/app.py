"""Composition root of ingress: builds the clients, the provider registry and the routes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from omni_providers import InboundRequest, ProviderRegistry, UnknownProvider
from omni_runtime.metrics import Metrics
from omni_runtime.service import ServiceContext, Slot, open_service
from omni_runtime.settings import Settings
from omni_runtime.web import ApiError, ReadyCheck, api_error_handler, health_routes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_ingress.channels import ChannelDirectory
from omni_ingress.intake import accept_webhook, read_limited

SERVICE = "ingress"


@dataclass
class Ingress:
    ctx: ServiceContext
    channels: ChannelDirectory
    registry: ProviderRegistry


def create_app(settings: Settings | None = None, registry: ProviderRegistry | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics(SERVICE)
    registry = registry or ProviderRegistry.from_entry_points()
    slot: Slot[Ingress] = Slot()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_service(SERVICE, settings, metrics) as ctx:
            slot.set(Ingress(ctx, ChannelDirectory(ctx.db), registry))
            try:
                yield
            finally:
                slot.set(None)

    async def third_party(request: Request) -> Response:
        name = request.path_params["provider"]
        status = 500
        try:
            if registry.is_builtin(name):
                raise ApiError(404, "unknown_provider", f"{name} has its own webhook path")
            try:
                provider = registry.get(name)
            except UnknownProvider as exc:
                raise ApiError(404, "unknown_provider", str(exc)) from None
            ingress = slot.get()
            body = await read_limited(request, settings.webhook_max_bytes)
            inbound = InboundRequest(body=body, headers=dict(request.headers), url=str(request.url))
            messages = await accept_webhook(provider, inbound, ingress.channels, ingress.ctx.broker)
            status = 200
            return JSONResponse({"status": "accepted", "messages": len(messages)})
        except ApiError as exc:
            status = exc.status
            raise
        finally:
            metrics.webhooks.labels(name, str(status)).inc()

    def checks() -> dict[str, ReadyCheck]:
        current = slot.peek()
        return current.ctx.ready_checks() if current else {}

    routes = [
        *health_routes(checks, metrics),
        Route("/webhooks/{provider}/receive", third_party, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={ApiError: api_error_handler})
