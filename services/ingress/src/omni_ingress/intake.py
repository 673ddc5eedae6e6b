"""Webhook intake: size limit, the provider's own checks and conversion, then a confirmed publish per event."""

import logging

from pymongo.errors import PyMongoError
from starlette.requests import ClientDisconnect, Request

from omni_contracts import MessageReceived
from omni_ingress.channels import ChannelDirectory
from omni_providers import Inbound, InboundRequest, Provider, WebhookRejected
from omni_runtime.broker import Broker
from omni_runtime.errors import BrokerUnavailable
from omni_runtime.web import ApiError

log = logging.getLogger(__name__)


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # Gone mid-body (gave up, or closed at the body deadline): nothing was queued, nobody reads the answer.
        raise ApiError(400, "client_disconnected", "the client went away before sending the whole body") from None
    return b"".join(chunks)


async def accept_webhook(
    provider: Provider, inbound: InboundRequest, channels: ChannelDirectory, broker: Broker
) -> Inbound:
    """Check and queue one webhook; answers are raised as ApiError. Nothing is published unless all checks pass."""
    try:
        received = await provider.receive(inbound, channels)
    except WebhookRejected as exc:
        raise ApiError(exc.status, exc.error, exc.detail) from None
    except PyMongoError as exc:  # an unknown channel during a database outage: the messenger retries a 503
        log.warning("webhook not queued", extra={"provider": provider.name, "cause": f"database: {exc}"})
        raise ApiError(503, "database_unavailable", "could not look up the channel; retry later") from None
    try:
        for message in received.messages:
            await broker.publish_event(MessageReceived(message=message))
        for status in received.statuses:
            await broker.publish_event(status)
    except BrokerUnavailable as exc:
        log.warning("webhook not queued", extra={"provider": provider.name, "cause": str(exc)})
        raise ApiError(503, "broker_unavailable", "could not queue the message; retry later") from None
    return received
