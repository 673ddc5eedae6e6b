"""Events on the broker; an event's `kind` is the routing key it is published with on `omni.events`."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from omni_contracts.messages import (
    Attachment,
    AttachmentStatus,
    Contract,
    MessageStatus,
    Template,
    UnifiedMessage,
)


def _new_id() -> str:
    return uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


class Event(Contract):
    """An event on `omni.events`; each subclass has a literal `kind`, which is also its routing key."""

    event_id: str = Field(default_factory=_new_id)
    occurred_at: datetime = Field(default_factory=_now)


class MessageReceived(Event):
    """Ingress accepted a customer message; the router stores and routes it."""

    kind: Literal["message.received"] = "message.received"
    message: UnifiedMessage


class MessageOutgoing(Event):
    """An operator's reply, stored by the router, to be delivered by the dispatcher.

    A reply is free text with attachments (ours by `file_id`, or anyone's by `url`), or a `template`. `tag` is
    the dispatcher's, not the producer's: the message tag it sends with where the messenger's reply window needs
    one (Messenger's `HUMAN_AGENT` between 24 hours and 7 days); producers leave it unset.
    """

    kind: Literal["message.outgoing"] = "message.outgoing"
    message_id: str
    chat_id: str
    channel_id: str
    provider: str
    recipient: str
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    template: Template | None = None
    tag: str | None = None


class MessageSent(Event):
    """The messenger's API accepted an outgoing message."""

    kind: Literal["message.sent"] = "message.sent"
    message_id: str
    chat_id: str
    provider_message_id: str | None = None


class MessageFailed(Event):
    """An outgoing message will not be delivered; `reason` says why."""

    kind: Literal["message.failed"] = "message.failed"
    message_id: str
    chat_id: str
    reason: str


class MessageStatusChanged(Event):
    """A delivery or read receipt from the messenger, for the message with `provider_message_id`.

    Messenger also reports by `watermark`: every message sent to `recipient` up to that moment.
    `reason` says why, for a `failed` receipt.
    """

    kind: Literal["message.status"] = "message.status"
    channel_id: str
    provider_message_id: str | None = None
    status: MessageStatus
    recipient: str | None = None
    watermark: datetime | None = None
    reason: str | None = None


class ProfileRequested(Event):
    kind: Literal["profile.requested"] = "profile.requested"
    contact_id: str
    channel_id: str
    provider: str
    external_id: str
    sender_name: str | None = None


class ProfileResolved(Event):
    kind: Literal["profile.resolved"] = "profile.resolved"
    contact_id: str
    name: str
    photo_url: str | None = None


class AttachmentRequested(Event):
    kind: Literal["attachment.requested"] = "attachment.requested"
    message_id: str
    chat_id: str
    channel_id: str
    provider: str
    index: int
    attachment: Attachment


class AttachmentStored(Event):
    kind: Literal["attachment.stored"] = "attachment.stored"
    message_id: str
    chat_id: str
    index: int
    status: AttachmentStatus
    file_id: str | None = None
    size: int | None = None
    content_type: str | None = None
    failure_reason: str | None = None


# The events outbound webhooks may subscribe to (API.md, "Supervisor, admin and integration").
WEBHOOK_EVENTS = (
    "chat.created",
    "chat.assigned",
    "chat.closed",
    "message.created",
    "message.status",
    "contact.updated",
    "rating.created",
)


class WebhookEvent(BaseModel):
    """What an outbound webhook POSTs: `{"id", "event", "created_at", "data"}`.

    `id` is the event's own id, the same for every subscription and every attempt: receivers get it as
    `Idempotency-Key`. `event` is one of WEBHOOK_EVENTS; any other name is delivered as it is, so a newer
    router's events do not park at an older dispatcher.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=128)
    event: str = Field(min_length=1, max_length=64)
    created_at: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class WebhookDelivery(Event):
    """One event for one subscription: the dispatcher POSTs `webhook` to the subscription's URL, signed with its
    secret, retrying and parking like replies. Publish one per (subscription, event).

    URL and secret are read from `webhook_subscriptions` by `subscription_id` at each attempt, never carried
    here: parked messages are shown by the admin API, and a deleted subscription stops its deliveries.
    """

    kind: Literal["webhook.delivery"] = "webhook.delivery"
    subscription_id: str = Field(min_length=1, max_length=64)
    webhook: WebhookEvent


NotificationKind = Literal[
    "chat.offered", "chat.assigned", "chat.revoked", "chat.closed", "message.new", "message.status", "note.new"
]


class ChatNotification(Event):
    """What an operator receives on its `operator.<id>` queue (and on the SSE stream)."""

    event: NotificationKind
    chat_id: str
    operator_id: str
    data: dict[str, Any] = Field(default_factory=dict)


RouterUpdate = Annotated[
    MessageSent | MessageFailed | MessageStatusChanged | ProfileResolved | AttachmentStored,
    Field(discriminator="kind"),
]
