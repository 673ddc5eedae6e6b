"""Third-party channels: the provider posts our unified format, signed with X-Omni-Signature."""

import json
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from omni_contracts import Attachment, MessageOutgoing, MessageType, UnifiedMessage
from omni_providers.base import Channel, ChannelLookup, Inbound, InboundRequest, SendResult, WebhookRejected
from omni_providers.http import post
from omni_providers.payloads import parse_json
from omni_providers.signatures import OMNI_SIGNATURE_HEADER, hmac_sha256_signature, verify_hmac_sha256
from omni_runtime.errors import PermanentError
from omni_runtime.settings import Settings
from omni_runtime.web import describe

# Every attempt at one reply carries the reply's id here, so a receiver can recognise the repeat a crash causes
# (the dispatcher died after the receiver took the reply but before it heard the answer) and drop it.
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"


class InboundAttachment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str = Field(min_length=1)
    content_type: str | None = None
    file_name: str | None = None


class InboundMessage(BaseModel):
    """The body a third-party provider posts (docs/api.md)."""

    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(min_length=1, max_length=512)
    sender: str = Field(min_length=1, max_length=512)
    recipient: str = Field(min_length=1)
    timestamp: datetime
    type: MessageType = "text"
    text: str | None = Field(default=None, max_length=65_536)
    attachments: list[InboundAttachment] = Field(default_factory=list, max_length=20)
    sender_name: str | None = Field(default=None, max_length=256)

    @field_validator("message_id", "sender", "recipient", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("timestamp", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class OutgoingAttachment(BaseModel):
    url: str | None
    content_type: str | None
    file_name: str | None


class OutgoingBody(BaseModel):
    message_id: str
    chat_id: str
    recipient: str
    sender: str
    text: str | None
    attachments: list[OutgoingAttachment]


class ThirdPartyProvider:
    """Any provider name that is not built in; the reference's example is `test`."""

    kind: Literal["third_party"] = "third_party"

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        self.name = name

    async def receive(self, request: InboundRequest, channels: ChannelLookup) -> Inbound:
        payload = parse_json(request.body)
        channel = await channels.by_source(self.name, self.channel_source(request, payload))
        if channel is None:
            raise WebhookRejected(404, "unknown_channel", f"no active {self.name} channel for this recipient")
        if not self.verify(channel, request):
            raise WebhookRejected(401, "bad_signature", "signature missing or wrong")
        return Inbound(messages=self.parse(channel, payload))

    def channel_source(self, request: InboundRequest, payload: Any) -> str:
        recipient = payload.get("recipient") if isinstance(payload, dict) else None
        if not isinstance(recipient, str | int) or isinstance(recipient, bool) or recipient == "":
            raise WebhookRejected(400, "invalid_payload", "recipient: a channel source is required")
        return str(recipient)

    def verify(self, channel: Channel, request: InboundRequest) -> bool:
        return verify_hmac_sha256(
            str(channel.settings.get("secret", "")), request.body, request.header(OMNI_SIGNATURE_HEADER)
        )

    def parse(self, channel: Channel, payload: Any) -> list[UnifiedMessage]:
        try:
            inbound = InboundMessage.model_validate(payload)
        except ValidationError as exc:
            raise WebhookRejected(400, "invalid_payload", describe(exc)) from None
        if not inbound.text and not inbound.attachments:
            raise WebhookRejected(400, "invalid_payload", "a message needs text or attachments")
        return [
            UnifiedMessage(
                provider=self.name,
                channel_id=channel.id,
                provider_message_id=inbound.message_id,
                sender=inbound.sender,
                sender_name=inbound.sender_name,
                recipient=inbound.recipient,
                sent_at=inbound.timestamp,
                type=inbound.type,
                text=inbound.text,
                attachments=tuple(
                    Attachment(url=a.url, content_type=a.content_type, file_name=a.file_name)
                    for a in inbound.attachments
                ),
            )
        ]

    async def send(self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing) -> SendResult:
        url = channel.settings.get("outgoing_url")
        if not url:
            raise PermanentError(f"channel {channel.id} has no outgoing_url")
        if not is_http_url(url):
            raise PermanentError(f"channel {channel.id}'s outgoing_url is not an http(s) URL")
        if message.template is not None:
            raise PermanentError(f"{self.name} channels do not send templates")
        body = OutgoingBody(
            message_id=message.message_id,
            chat_id=message.chat_id,
            recipient=message.recipient,
            sender=channel.source,
            text=message.text,
            attachments=[
                OutgoingAttachment(url=a.url, content_type=a.content_type, file_name=a.file_name)
                for a in message.attachments
            ],
        )
        raw = body.model_dump_json().encode()
        signature = hmac_sha256_signature(str(channel.settings.get("secret", "")), raw)
        response = await post(
            http,
            str(url),
            f"{self.name} outgoing_url",
            content=raw,
            headers={
                "Content-Type": "application/json",
                OMNI_SIGNATURE_HEADER: signature,
                IDEMPOTENCY_KEY_HEADER: message.message_id,
            },
        )
        return SendResult(provider_message_id=_provider_id(response))


def is_http_url(value: object) -> bool:
    """An absolute http or https URL with a host: all that an outgoing_url may be."""
    if not isinstance(value, str):
        return False
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def _provider_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    value = data.get("message_id") or data.get("id") if isinstance(data, dict) else None
    return str(value) if value else None
