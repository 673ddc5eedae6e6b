"""Composition root of ingress: builds the clients, the provider registry and the routes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_ingress.channels import ChannelDirectory
from omni_ingress.intake import accept_webhook, read_limited
from omni_ingress.polling import telegram_polling
from omni_providers import InboundRequest, Provider, ProviderRegistry, UnknownProvider
from omni_runtime.metrics import Metrics
from omni_runtime.service import ServiceContext, Slot, hosted_app
from omni_runtime.settings import Settings
from omni_runtime.web import ApiError

SERVICE = "ingress"


@dataclass
class Ingress:
    ctx: ServiceContext
    channels: ChannelDirectory
    registry: ProviderRegistry


def create_app(settings: Settings | None = None, registry: ProviderRegistry | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics(SERVICE)
    registry = registry or ProviderRegistry.from_entry_points(settings)
    slot: Slot[Ingress] = Slot()

    @asynccontextmanager
    async def start(ctx: ServiceContext) -> AsyncIterator[Ingress]:
        channels = ChannelDirectory(ctx.db)
        async with telegram_polling(registry, channels, ctx.db, ctx.broker, ctx.http, settings):
            yield Ingress(ctx, channels, registry)

    async def webhook(request: Request) -> Response:
        name: str = request.path_params["provider"]
        channel_id: str | None = request.path_params.get("channel_id")
        status = 500
        try:
            provider = _provider(registry, name, channel_id)
            ingress = slot.get()
            body = await read_limited(request, settings.webhook_max_bytes)
            inbound = InboundRequest(
                body=body,
                headers=dict(request.headers),
                url=public_url(settings.public_base_url, request),
                method=request.method,
                query=dict(request.query_params),
                channel_id=None if channel_id == "receive" else channel_id,
            )
            received = await accept_webhook(provider, inbound, ingress.channels, ingress.ctx.broker)
            status = received.reply.status if received.reply else 200
            if received.reply is not None:
                reply = received.reply
                return Response(reply.body, status_code=reply.status, media_type=reply.content_type)
            return JSONResponse(
                {"status": "accepted", "messages": len(received.messages), "statuses": len(received.statuses)}
            )
        except ApiError as exc:
            status = exc.status
            raise
        finally:
            metrics.webhooks.labels(name if registry.is_builtin(name) else "third_party", str(status)).inc()

    routes = [
        Route("/webhooks/{provider}/{channel_id}", webhook, methods=["POST"]),
        Route("/webhooks/{provider}", webhook, methods=["GET", "POST"]),
    ]
    return hosted_app(SERVICE, settings, metrics, start, routes, slot)


def _provider(registry: ProviderRegistry, name: str, channel_id: str | None) -> Provider:
    """Built-in messengers have their own paths (API.md); every other name posts to `/receive`."""
    builtin = registry.is_builtin(name)
    if not builtin and channel_id != "receive":
        raise ApiError(404, "not_found", f"third-party providers post to /webhooks/{name}/receive")
    try:
        return registry.get(name)
    except UnknownProvider as exc:
        raise ApiError(404, "unknown_provider", str(exc)) from None


def public_url(base: str, request: Request) -> str:
    """The URL as the messenger called it: behind a proxy only PUBLIC_BASE_URL knows scheme and host."""
    query = request.url.query
    return base.rstrip("/") + request.url.path + (f"?{query}" if query else "")
