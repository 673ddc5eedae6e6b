"""What Messenger and WhatsApp webhooks share: the verification handshake and X-Hub-Signature-256.

The app secret belongs to the channel named inside the body, so the body is parsed only far enough
to name its channels; every one of them must vouch for the signature before anything is converted.
"""

import hmac
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from omni_providers.base import Channel, ChannelLookup, InboundRequest, WebhookRejected, WebhookReply
from omni_providers.signatures import verify_hmac_sha256
from omni_runtime.web import describe

M = TypeVar("M", bound=BaseModel)

SIGNATURE_HEADER = "X-Hub-Signature-256"
CHALLENGE_LIMIT = 512


async def handshake(provider: str, request: InboundRequest, channels: ChannelLookup) -> WebhookReply:
    """`GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`: the challenge, if a channel's token matches."""
    mode = request.query.get("hub.mode")
    token = request.query.get("hub.verify_token") or ""
    challenge = request.query.get("hub.challenge")
    candidates = await channels.of_provider(provider)
    # Every channel is compared, so the answer's timing does not tell how many tokens were tried.
    matches = [_same(token, str(c.settings.get("verify_token") or "")) for c in candidates]
    if mode != "subscribe" or not any(matches):
        raise WebhookRejected(403, "verification_failed", "hub.mode or hub.verify_token does not match")
    if not challenge or len(challenge) > CHALLENGE_LIMIT:
        raise WebhookRejected(400, "invalid_challenge", f"hub.challenge must be 1-{CHALLENGE_LIMIT} characters")
    return WebhookReply(challenge.encode(), "text/plain")


def require_signature(request: InboundRequest) -> str:
    """The signature header; refused at once when it is missing, before the body is even parsed."""
    signature = request.header(SIGNATURE_HEADER)
    if not signature:
        raise WebhookRejected(401, "bad_signature", f"{SIGNATURE_HEADER} is missing")
    return signature


async def verified_channels(
    provider: str, request: InboundRequest, channels: ChannelLookup, sources: Iterable[str]
) -> dict[str, Channel]:
    """The active channel of each source named in the body, once each one's app secret verifies the body."""
    found: dict[str, Channel] = {}
    for source in sorted(set(sources)):
        channel = await channels.by_source(provider, source)
        if channel is None:
            raise WebhookRejected(404, "unknown_channel", f"no active {provider} channel for {source}")
        found[source] = channel
    signature = require_signature(request)
    for channel in found.values():
        if not verify_hmac_sha256(str(channel.settings.get("app_secret") or ""), request.body, signature):
            raise WebhookRejected(401, "bad_signature", f"{SIGNATURE_HEADER} does not match the body")
    return found


def _same(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


class WebhookModel(BaseModel):
    """Meta adds fields freely: unknown ones are ignored, the ones we read are checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        # JSON may carry lone surrogates ("\ud800"), which no later step could serialise: refuse them here.
        if isinstance(value, str):
            value.encode("utf-8")
        return value


def _id_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Graph ids are strings (page ids, PSIDs, phone number ids, wamids); a number is taken as its text.
GraphId = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=512)]
# Up to the year 9999, so every accepted timestamp converts to a datetime.
EpochSeconds = Annotated[int, Field(ge=0, le=253_402_300_799)]
EpochMillis = Annotated[int, Field(ge=0, le=253_402_300_799_999)]


def at_millis(value: int | None) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC) if value is not None else datetime.now(UTC)


def validated(model: type[M], payload: Any) -> M:
    """The payload as `model`, or a 400 naming the first problem."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise WebhookRejected(400, "invalid_payload", describe(exc)) from None


def object_list(value: Any) -> list[dict[str, Any]]:
    """The dicts of a JSON array (for finding channels before anything is validated)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def source_text(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None
