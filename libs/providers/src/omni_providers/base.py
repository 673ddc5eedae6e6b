"""The provider port: what ingress, the dispatcher and the other services ask of a messenger adapter."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from omni_contracts import MessageOutgoing, UnifiedMessage


@dataclass(frozen=True)
class Channel:
    """A configured channel (the reference's [Channel] row with its provider settings)."""

    id: str
    name: str
    provider: str
    source: str
    queue_id: str
    settings: Mapping[str, Any] = field(repr=False)
    is_active: bool = True

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> "Channel":
        return cls(
            id=str(doc["_id"]),
            name=str(doc["name"]),
            provider=str(doc["provider"]),
            source=str(doc["source"]),
            queue_id=str(doc.get("queue_id") or ""),
            settings=dict(doc.get("settings") or {}),
            is_active=bool(doc.get("is_active", True)),
        )


@dataclass(frozen=True)
class InboundRequest:
    """A webhook request as ingress received it, before anything trusts it."""

    body: bytes
    headers: Mapping[str, str]
    url: str


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None


class WebhookRejected(Exception):
    """An inbound request that must be refused; `status` is the HTTP answer (400, 401, 404)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


class Provider(Protocol):
    """One messenger. `name` is the provider tag channels carry (the reference binds roles by it)."""

    name: str

    def channel_source(self, request: InboundRequest, payload: Any) -> str:
        """Which channel the request is for, read from the untrusted payload (only to find the secret)."""
        ...

    def verify(self, channel: Channel, request: InboundRequest) -> bool:
        """Whether the request really comes from the messenger for this channel (constant-time)."""
        ...

    def parse(self, channel: Channel, payload: Any) -> list[UnifiedMessage]:
        """Convert a verified payload into UnifiedMessages; raises WebhookRejected(400) when malformed."""
        ...

    async def send(self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing) -> SendResult:
        """Deliver an outgoing message; raises RetryLater for transient and PermanentError for final failures."""
        ...
