"""Outbound webhooks' side of the domain: the events subscribers get (`IntegrationEvent`, with ids derived from
their cause, so that handling the same cause again repeats the same id and receivers dedupe on it), what an admin
subscribes with, and the subscriptions and delivery attempts as the admin API answers them (never a secret)."""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from omni_router.domain.views import iso

WebhookEventName = Literal[
    "chat.created",
    "chat.assigned",
    "chat.closed",
    "message.created",
    "message.status",
    "contact.updated",
    "rating.created",
]


@dataclass(frozen=True, slots=True)
class IntegrationEvent:
    """One event for the webhooks' subscribers: `{"id", "event", "created_at", "data"}` as receivers get it."""

    event_id: str
    event: str
    created_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


def integration_event(
    kind: str, data: Mapping[str, Any], *, at: datetime, new_id: Callable[[], str], key: str | None = None
) -> IntegrationEvent:
    """An event; with `key` (its cause: a message, a chat, a receipt) its id is derived from it, so handling the
    same cause again (a redelivery after a crash) repeats the id and nothing is delivered twice."""
    event_id = event_id_of(key, kind) if key else new_id()
    return IntegrationEvent(event_id, kind, at, dict(data))


def event_id_of(key: str, kind: str) -> str:
    """24 hex characters, like every other id, the same for the same cause and event."""
    return hashlib.blake2b(f"{key}|{kind}|webhook".encode(), digest_size=12).hexdigest()


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2048)
    events: list[WebhookEventName] = Field(min_length=1)
    secret: str = Field(min_length=16, max_length=256)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an absolute http(s) URL")
        return url


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as stored (`webhook_subscriptions`, read by the dispatcher at each attempt)."""

    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime | None = None
    active: bool = True


def subscription_view(subscription: Subscription) -> dict[str, Any]:
    """A subscription as answered: never its secret."""
    return {
        "id": subscription.id,
        "url": subscription.url,
        "events": list(subscription.events),
        "active": subscription.active,
        "created_at": iso(subscription.created_at),
    }


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One attempt of the dispatcher's to deliver an event to a subscription (`webhook_deliveries`)."""

    id: str
    event_id: str
    event: str
    attempt: int
    at: datetime | None
    status_code: int | None
    outcome: str
    error: str | None


def attempt_view(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "event_id": attempt.event_id,
        "event": attempt.event,
        "attempt": attempt.attempt,
        "at": iso(attempt.at),
        "status_code": attempt.status_code,
        "outcome": attempt.outcome,
        "error": attempt.error,
    }
