"""Composition root of ingress: builds the clients, the provider registry and the routes."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_ingress.channels import ChannelDirectory
from omni_ingress.intake import accept_webhook, read_limited
from omni_ingress.media import media_route
from omni_ingress.polling import telegram_polling
from omni_providers import InboundRequest, Provider, ProviderRegistry, UnknownProvider
from omni_providers.media import media_links
from omni_runtime.metrics import Metrics
from omni_runtime.openapi import openapi_route
from omni_runtime.service import ServiceContext, Slot, hosted_app, worker_index
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
        if worker_index() > 0:  # INGRESS_WORKERS: the pollers run in the first worker only
            yield Ingress(ctx, channels, registry)
            return
        async with telegram_polling(registry, channels, ctx.db, ctx.broker, ctx.http, settings):
            yield Ingress(ctx, channels, registry)

    async def webhook(request: Request) -> Response:
        """A messenger's webhook: its own signature checked, each message queued before the answer.
        ---
        get:
          summary: Meta's verification handshake (`messenger`, `whatsapp`)
          tags: [webhooks]
          parameters:
            - {name: provider, in: path, required: true, schema: {type: string, enum: [messenger, whatsapp]}}
            - {name: hub.mode, in: query, required: true, schema: {type: string, enum: [subscribe]}}
            - {name: hub.verify_token, in: query, required: true, schema: {type: string}}
            - {name: hub.challenge, in: query, required: true, schema: {type: string}}
          responses:
            "200": {description: the challenge echoed back, content: {text/plain: {schema: {type: string}}}}
            "400":
              description: no challenge, or one too long
              content: &error
                application/json: {schema: {$ref: "#/components/schemas/Error"}}
            "403": {description: no channel has this verify token, content: *error}
            "404": {description: unknown provider, content: *error}
        post:
          summary: A messenger posts customer messages and receipts
          description: >-
            `/webhooks/telegram/{channel_id}` (header `X-Telegram-Bot-Api-Secret-Token`),
            `/webhooks/messenger` and `/webhooks/whatsapp` (`X-Hub-Signature-256` with the app secret),
            `/webhooks/twilio/{channel_id}` (form-encoded, `X-Twilio-Signature`) and, for every other provider
            name, `/webhooks/{provider}/receive` (our unified format, `X-Omni-Signature: sha256=<hex HMAC-SHA256
            of the raw body with the channel secret>`). Answered 200 only once every message is durably queued;
            a repeat of a message is answered 200 and stored once.
          tags: [webhooks]
          parameters:
            - name: provider
              in: path
              required: true
              description: "`telegram`, `messenger`, `whatsapp`, `twilio` or a third-party provider's name"
              schema: {type: string}
            - name: channel_id
              in: path
              required: true
              description: the channel (Telegram, Twilio), or `receive` for third-party providers
              schema: {type: string}
          requestBody:
            required: true
            content:
              application/json: {schema: {type: object}}
              application/x-www-form-urlencoded: {schema: {type: object}}
          responses:
            "200":
              description: >-
                queued: `{"status": "accepted", "messages": n, "statuses": n}`, or the answer the messenger
                expects (empty TwiML for Twilio)
              content:
                application/json: {schema: {type: object}}
                text/xml: {schema: {type: string}}
            "400":
              description: malformed payload, or the client went away mid-body
              content: *error
            "401": {description: missing or wrong signature, content: *error}
            "404": {description: "unknown or inactive channel, or a path the provider does not use", content: *error}
            "413": {description: body over WEBHOOK_MAX_BYTES, content: *error}
            "503": {description: broker or database unavailable; the messenger retries, content: *error}
        """
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
        media_route(lambda: slot.get().ctx.db, media_links(settings)),
        openapi_route("omnichannel ingress", version("omni-ingress")),
    ]
    return hosted_app(SERVICE, settings, metrics, start, routes, slot)


def _provider(registry: ProviderRegistry, name: str, channel_id: str | None) -> Provider:
    """Built-in messengers have their own paths (docs/api.md); every other name posts to `/receive`."""
    builtin = registry.is_builtin(name)
    if not builtin and channel_id != "receive":
        raise ApiError(404, "not_found", f"third-party providers post to /webhooks/{name}/receive")
    try:
        return registry.get(name)
    except UnknownProvider as exc:
        raise ApiError(404, "unknown_provider", str(exc)) from None


def public_url(base: str, request: Request) -> str:
    """The URL as the messenger called it: behind a proxy only PUBLIC_BASE_URL knows scheme and host."""
    path: str = request.scope["path"]
    query = request.scope["query_string"].decode()
    if path.startswith("//") or _UNUSUAL_PATH.search(path) or _UNUSUAL_QUERY.search(query):
        path, query = request.url.path, request.url.query  # as Starlette escapes and splits them
    return base.rstrip("/") + path + (f"?{query}" if query else "")


# What Starlette's `request.url` changes in a path or query (escaped, or dropped by urlsplit); anything else, the
# scope's path and query string are already what it answers, without parsing a URL per webhook.
_UNUSUAL_PATH = re.compile(r"[?#\\\t\r\n]")
_UNUSUAL_QUERY = re.compile(r"[#\t\r\n]")
