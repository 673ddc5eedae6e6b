"""Webhook intake: size, signature, channel and schema checks, then a confirmed publish per message."""

import json
import logging
from typing import Any

from omni_contracts import MessageReceived, UnifiedMessage
from omni_providers import InboundRequest, Provider, WebhookRejected
from omni_runtime.broker import Broker
from omni_runtime.errors import BrokerUnavailable
from omni_runtime.web import ApiError
from starlette.requests import Request

from omni_ingress.channels import ChannelDirectory

log = logging.getLogger(__name__)


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None


async def accept_webhook(
    provider: Provider, inbound: InboundRequest, channels: ChannelDirectory, broker: Broker
) -> list[UnifiedMessage]:
    """Check and queue one webhook; answers are raised as ApiError. Nothing is published unless all checks pass."""
    try:
        payload = parse_json(inbound.body)
        source = provider.channel_source(inbound, payload)
        channel = await channels.by_source(provider.name, source)
        if channel is None:
            raise ApiError(404, "unknown_channel", f"no active {provider.name} channel for this recipient")
        if not provider.verify(channel, inbound):
            raise ApiError(401, "bad_signature", "signature missing or wrong")
        messages = provider.parse(channel, payload)
    except WebhookRejected as exc:
        raise ApiError(exc.status, exc.error, exc.detail) from None
    try:
        for message in messages:
            await broker.publish_event(MessageReceived(message=message))
    except BrokerUnavailable as exc:
        log.warning("webhook not queued", extra={"provider": provider.name, "cause": str(exc)})
        raise ApiError(503, "broker_unavailable", "could not queue the message; retry later") from None
    return messages
