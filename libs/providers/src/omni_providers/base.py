"""The provider port: what ingress, the dispatcher and the other services ask of a messenger adapter."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import httpx

from omni_contracts import Attachment, MessageOutgoing, MessageStatusChanged, UnifiedMessage


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
    """A webhook request as ingress received it, before anything trusts it.

    `url` is the URL the messenger called as it saw it (PUBLIC_BASE_URL + path + query): Twilio
    signs it. `channel_id` is set for messengers whose webhook path names the channel.
    """

    body: bytes
    headers: Mapping[str, str]
    url: str
    method: str = "POST"
    query: Mapping[str, str] = field(default_factory=dict)
    channel_id: str | None = None

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)


@dataclass(frozen=True)
class WebhookReply:
    """What to answer the messenger instead of the default JSON (a verification challenge, empty TwiML)."""

    body: bytes
    content_type: str = "text/plain"
    status: int = 200


@dataclass
class Inbound:
    """What one verified webhook carried: customer messages, receipts, and the answer the messenger expects."""

    messages: list[UnifiedMessage] = field(default_factory=list)
    statuses: list[MessageStatusChanged] = field(default_factory=list)
    reply: WebhookReply | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None


class WebhookRejected(Exception):
    """An inbound request that must be refused; `status` is the HTTP answer (400, 401, 403, 404)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


class ChannelLookup(Protocol):
    """How a provider finds the channel a webhook is for; only active channels are returned."""

    async def by_id(self, provider: str, channel_id: str) -> Channel | None: ...

    async def by_source(self, provider: str, source: str) -> Channel | None: ...

    async def of_provider(self, provider: str) -> list[Channel]: ...


class Provider(Protocol):
    """One messenger. `name` is the provider tag channels carry (the reference binds roles by it).

    Required roles: receiving webhooks (the reference's IIncomeMessageWorker) and sending
    (IOutcomeMessageWorker). Optional roles are the hook protocols below; a provider implements
    those its messenger needs.
    """

    name: str

    async def receive(self, request: InboundRequest, channels: ChannelLookup) -> Inbound:
        """Find the channel, check authenticity (constant-time) before acting on anything, convert.

        Raises WebhookRejected: 401 bad signature, 404 unknown channel, 400 malformed payload.
        """
        ...

    async def send(self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing) -> SendResult:
        """Deliver an outgoing message; raises RetryLater for transient and PermanentError for final failures."""
        ...


@dataclass(frozen=True)
class WindowTag:
    """A message tag that stretches a reply window: `tag` lets a reply go until `lasts` after the customer's last
    message, on channels whose setting `setting` is true (Messenger: HUMAN_AGENT, 7 days, `human_agent_tag`)."""

    tag: str
    lasts: timedelta
    setting: str


@dataclass(frozen=True)
class DeliveryPolicy:
    """A messenger's sending rules, which the dispatcher keeps by pacing rather than by failing.

    `reply_window`: free-form replies are allowed only this long after the customer's last
    message (Messenger, WhatsApp: 24 h); `templates`: approved templates may go at any time;
    `window_tag`: a tag that allows free replies for longer. `per_chat_interval`: seconds between
    two messages to one recipient. `per_channel_rate`: messages per second across the whole channel.
    """

    reply_window: timedelta | None = None
    per_chat_interval: float = 0.0
    per_channel_rate: float | None = None
    templates: bool = False
    window_tag: WindowTag | None = None


def delivery_policy(provider: object) -> DeliveryPolicy:
    """A provider states its rules in a `delivery_policy` attribute; without one there are none."""
    policy = getattr(provider, "delivery_policy", None)
    return policy if isinstance(policy, DeliveryPolicy) else DeliveryPolicy()


@dataclass(frozen=True)
class Registration:
    ok: bool
    detail: str
    settings_update: Mapping[str, Any] = field(default_factory=dict, repr=False)


@runtime_checkable
class Registrar(Protocol):
    """Optional role (the reference's IMessengerRegistrationWorker): connect a channel to its messenger.

    `settings_update` holds settings the registration generated (e.g. Telegram's secret token);
    they are stored with the channel and never shown.
    """

    async def register(self, http: httpx.AsyncClient, channel: Channel) -> Registration: ...


class SenderProfile(Protocol):
    """What a messenger knows of a sender; an adapter returns any object of this shape."""

    @property
    def name(self) -> str | None: ...

    @property
    def photo_url(self) -> str | None: ...


@runtime_checkable
class ProfileSource(Protocol):
    """Optional role (the reference's IProfileDataProvider): look a sender up in the messenger.

    Returns None when the messenger has nothing to add; raises RetryLater for transient trouble and
    PermanentError when the profile cannot be had, in which case the webhook's name is used.
    """

    async def fetch_profile(
        self, http: httpx.AsyncClient, channel: Channel, external_id: str
    ) -> SenderProfile | None: ...


class FileLocation(Protocol):
    """A GET that yields an attachment's bytes: its URL and the headers it needs (a bearer token, say)."""

    @property
    def url(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


@runtime_checkable
class AttachmentSource(Protocol):
    """Optional role (the reference's IAttachmentsLoadWorker): where an attachment that is not a plain URL lives.

    Raises RetryLater for transient trouble and PermanentError when the file cannot be had.
    """

    async def locate_attachment(
        self, http: httpx.AsyncClient, channel: Channel, attachment: Attachment
    ) -> FileLocation: ...


@dataclass(frozen=True)
class OutgoingFile:
    """One of our files (an operator's upload in GridFS) on its way out in a reply: what it is, and its bytes."""

    file_id: str
    file_name: str
    content_type: str
    size: int
    read: Callable[[], Awaitable[bytes]] = field(repr=False, compare=False)


@runtime_checkable
class FileUploader(Protocol):
    """Optional role: a messenger that takes our files as uploads of their bytes (Telegram), not by URL.

    For a reply with attachments by `file_id`, the dispatcher calls `send_files` instead of `send`, with each
    such file by its id. Providers without this role get the files as signed, expiring URLs in `attachments[].url`.
    """

    async def send_files(
        self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing, files: Mapping[str, OutgoingFile]
    ) -> SendResult: ...


def fallback_contact_name(channel: Channel, sender: str) -> str:
    """The reference's name for a contact whose profile is not known: `New contact <channel>-<sender id>`."""
    return f"New contact {channel.name}-{sender}"
