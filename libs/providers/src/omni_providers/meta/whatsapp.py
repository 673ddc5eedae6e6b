"""WhatsApp Cloud API: business account webhooks in, `/{phone_number_id}/messages` out, media by id.

Wire facts: docs/providers.md, "WhatsApp Cloud API". Senders are named by the webhook itself
(`contacts[].profile.name`), so this provider has no profile lookup. Media arrive as ids that the
Graph API turns into short-lived URLs, fetched with the same bearer token.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import Field, ValidationError

from omni_contracts import (
    Attachment,
    Location,
    MessageOutgoing,
    MessageStatus,
    MessageStatusChanged,
    MessageType,
    Template,
    UnifiedMessage,
)
from omni_providers.base import (
    Channel,
    ChannelLookup,
    DeliveryPolicy,
    Inbound,
    InboundRequest,
    Registration,
    SendResult,
    WebhookRejected,
)
from omni_providers.meta.graph import bearer, graph_call, node
from omni_providers.meta.webhooks import (
    EpochSeconds,
    GraphId,
    WebhookModel,
    handshake,
    object_list,
    require_signature,
    source_text,
    validated,
    verified_channels,
)
from omni_providers.payloads import parse_json
from omni_runtime.errors import PermanentError
from omni_runtime.settings import Settings
from omni_runtime.web import describe

MEDIA_TYPES: dict[str, MessageType] = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "document": "file",
    "sticker": "sticker",
}
RECEIPTS: dict[str, MessageStatus] = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}
# Media kinds WhatsApp lets us caption; audio takes none.
CAPTIONED = ("image", "video", "document")
# What the Cloud API takes as image, video or audio (types and sizes of "Supported media types"); any other file
# goes as a document (100 MB).
MEDIA_KINDS: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * 1024 * 1024),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * 1024 * 1024),
    "audio": (frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}), 16 * 1024 * 1024),
}


class Media(WebhookModel):
    id: GraphId
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None


class Text(WebhookModel):
    body: str


class WaLocation(WebhookModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = None
    address: str | None = None


class Button(WebhookModel):
    text: str | None = None
    payload: str | None = None


class Reply(WebhookModel):
    id: str | None = None
    title: str | None = None


class Interactive(WebhookModel):
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class WaMessage(WebhookModel):
    id: GraphId
    # `from` may be missing on newer payloads; the contact's `wa_id` stands in then.
    sender: GraphId | None = Field(default=None, alias="from")
    timestamp: EpochSeconds | None = None
    type: str = Field(min_length=1, max_length=64)
    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: WaLocation | None = None
    button: Button | None = None
    interactive: Interactive | None = None


class Profile(WebhookModel):
    name: str | None = None


class Contact(WebhookModel):
    profile: Profile | None = None
    wa_id: GraphId | None = None


class StatusError(WebhookModel):
    code: int | None = None
    title: str | None = None
    message: str | None = None


class WaStatus(WebhookModel):
    id: GraphId
    status: str
    recipient_id: str | None = None
    errors: list[StatusError] = Field(default_factory=list)


class Metadata(WebhookModel):
    phone_number_id: GraphId
    display_phone_number: str | None = None


class Value(WebhookModel):
    metadata: Metadata
    contacts: list[Contact] = Field(default_factory=list)
    messages: list[WaMessage] = Field(default_factory=list)
    statuses: list[WaStatus] = Field(default_factory=list)


class Change(WebhookModel):
    field: str
    value: dict[str, Any]


class Entry(WebhookModel):
    id: GraphId | None = None
    changes: list[Change] = Field(default_factory=list)


class AccountWebhook(WebhookModel):
    object: Literal["whatsapp_business_account"]
    entry: list[Entry] = Field(min_length=1)


@dataclass(frozen=True)
class MediaLocation:
    """Where the attachments service GETs a media file: a short-lived URL that wants the bearer token too."""

    url: str
    headers: dict[str, str] = field(repr=False)


class WhatsAppProvider:
    """The `whatsapp` provider (Cloud API): channel `source` is the phone number id; settings `access_token`,
    `app_secret`, `verify_token` (docs/api.md)."""

    # 80 messages a second per number is Meta's default throughput; beyond it Graph answers 130429.
    # Outside the 24-hour window only approved templates go (Graph error 131047 otherwise).
    delivery_policy = DeliveryPolicy(reply_window=timedelta(hours=24), per_channel_rate=80.0, templates=True)

    def __init__(self, name: str = "whatsapp", settings: Settings | None = None) -> None:
        self.name = name
        self.graph = (settings or Settings()).meta_graph_api_url.rstrip("/")

    async def receive(self, request: InboundRequest, channels: ChannelLookup) -> Inbound:
        if request.method == "GET":
            return Inbound(reply=await handshake(self.name, request, channels))
        require_signature(request)
        payload = parse_json(request.body)
        found = await verified_channels(self.name, request, channels, phone_number_ids(payload))
        return convert(self.name, validated(AccountWebhook, payload), found)

    async def send(self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing) -> SendResult:
        """One message per attachment; the text rides as the first captionable attachment's caption, or alone."""
        token = _token(channel)
        bodies = _send_bodies(message)
        last: str | None = None
        for body in bodies:
            answer = await graph_call(
                http,
                "POST",
                node(self.graph, channel.source, "messages"),
                "WhatsApp Cloud API",
                token,
                headers=bearer(token),
                json_body=body,
            )
            sent = object_list(answer.get("messages"))
            last = (source_text(sent[0].get("id")) if sent else None) or last
        return SendResult(provider_message_id=last)

    async def register(self, http: httpx.AsyncClient, channel: Channel) -> Registration:
        """The access token must reach the channel's phone number."""
        missing = [k for k in ("access_token", "app_secret", "verify_token") if not channel.settings.get(k)]
        if missing:
            return Registration(ok=False, detail=f"settings need {', '.join(missing)}")
        token = _token(channel)
        number = await graph_call(
            http, "GET", node(self.graph, channel.source), "Graph API", token, headers=bearer(token)
        )
        name = number.get("verified_name") or number.get("display_phone_number") or channel.source
        return Registration(ok=True, detail=f"access token valid for phone number {name}")

    async def locate_attachment(
        self, http: httpx.AsyncClient, channel: Channel, attachment: Attachment
    ) -> MediaLocation:
        """Media id -> `GET {graph}/{media_id}` -> its URL, fetched with the same bearer token."""
        token = _token(channel)
        if not attachment.provider_file_id:
            if attachment.url:
                return MediaLocation(attachment.url, {})
            raise PermanentError("the attachment has neither a media id nor a URL")
        media = await graph_call(
            http, "GET", node(self.graph, attachment.provider_file_id), "WhatsApp media", token, headers=bearer(token)
        )
        url = media.get("url")
        if not isinstance(url, str) or not url:
            raise PermanentError("WhatsApp media answer has no url")
        return MediaLocation(url, bearer(token))


def phone_number_ids(payload: Any) -> list[str]:
    """`entry[].changes[].value.metadata.phone_number_id`: the numbers a webhook speaks for."""
    entries = object_list(payload.get("entry")) if isinstance(payload, dict) else []
    found: list[str] = []
    for change in (c for e in entries for c in object_list(e.get("changes"))):
        value = change.get("value")
        metadata = value.get("metadata") if isinstance(value, dict) else None
        number = source_text(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
        if number:
            found.append(number)
    if not found:
        raise WebhookRejected(400, "invalid_payload", "entry[].changes[].value.metadata.phone_number_id: none named")
    return found


def convert(provider: str, webhook: AccountWebhook, channels: dict[str, Channel]) -> Inbound:
    inbound = Inbound()
    for change in (c for e in webhook.entry for c in e.changes):
        if change.field != "messages" or "metadata" not in change.value:
            continue  # account and template updates: not ours to act on
        _convert_value(provider, validated(Value, change.value), channels, inbound)
    return inbound


def _convert_value(provider: str, value: Value, channels: dict[str, Channel], inbound: Inbound) -> None:
    channel = channels.get(value.metadata.phone_number_id)
    if channel is None:
        raise WebhookRejected(400, "invalid_payload", "metadata.phone_number_id: not the number that was checked")
    try:
        inbound.messages += [_message(provider, channel, value, m) for m in value.messages]
        inbound.statuses += [_status(channel, s) for s in value.statuses if s.status in RECEIPTS]
    except ValidationError as exc:
        raise WebhookRejected(400, "invalid_payload", describe(exc)) from None


def _message(provider: str, channel: Channel, value: Value, message: WaMessage) -> UnifiedMessage:
    contact = _contact(value.contacts, message.sender)
    sender = message.sender or (contact.wa_id if contact else None)
    if not sender:
        raise WebhookRejected(400, "invalid_payload", f"messages[{message.id}]: no sender (`from` or contacts wa_id)")
    return UnifiedMessage(
        provider=provider,
        channel_id=channel.id,
        provider_message_id=message.id,
        sender=sender,
        sender_name=contact.profile.name if contact and contact.profile else None,
        recipient=channel.source,
        sent_at=datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp is not None else datetime.now(UTC),
        **_content(message),
    )


def _contact(contacts: list[Contact], sender: str | None) -> Contact | None:
    """The contact entry for the sender; a lone entry is the sender's when either side lacks the number."""
    for contact in contacts:
        if sender and contact.wa_id == sender:
            return contact
    lone = len(contacts) == 1 and (sender is None or contacts[0].wa_id is None)
    return contacts[0] if lone else None


def _content(message: WaMessage) -> dict[str, Any]:
    """Type, text, attachments and location of a customer message; unknown kinds stay visible as a note."""
    if message.type in MEDIA_TYPES:
        media: Media | None = getattr(message, message.type)
        if media is None:
            raise WebhookRejected(400, "invalid_payload", f"messages[{message.id}]: type {message.type} without it")
        file = Attachment(provider_file_id=media.id, content_type=media.mime_type, file_name=media.filename)
        return {"type": MEDIA_TYPES[message.type], "text": media.caption or None, "attachments": (file,)}
    if message.type == "location" and message.location is not None:
        place = message.location
        text = ", ".join(p for p in (place.name, place.address) if p) or None
        location = Location(latitude=place.latitude, longitude=place.longitude)
        return {"type": "location", "text": text, "location": location}
    return {"type": "text", "text": _text(message)}


def _text(message: WaMessage) -> str:
    if message.text is not None:
        return message.text.body
    if message.button is not None and (message.button.text or message.button.payload):
        return message.button.text or message.button.payload or ""
    return _reply_title(message) or f"[{message.type} message]"


def _reply_title(message: WaMessage) -> str | None:
    """The title of the interactive button or list row the customer picked."""
    interactive = message.interactive
    reply = (interactive.button_reply or interactive.list_reply) if interactive else None
    return reply.title if reply is not None and reply.title else None


def _status(channel: Channel, status: WaStatus) -> MessageStatusChanged:
    reason = None
    if status.status == "failed":
        details = [f"{e.code}: {e.title or e.message}" for e in status.errors]
        reason = "WhatsApp could not deliver the message" + (f" ({'; '.join(details)})" if details else "")
    return MessageStatusChanged(
        channel_id=channel.id,
        provider_message_id=status.id,
        status=RECEIPTS[status.status],
        reason=reason,
    )


def _send_bodies(message: MessageOutgoing) -> list[dict[str, Any]]:
    if message.template is not None:
        return [_send_body(message.recipient, "template", template_content(message.template))]
    text = message.text or None
    bodies: list[dict[str, Any]] = []
    for attachment in message.attachments:
        kind, media = _media(attachment)
        if text and kind in CAPTIONED:
            media["caption"], text = text, None
        bodies.append(_send_body(message.recipient, kind, media))
    if text:
        bodies.insert(0, _send_body(message.recipient, "text", {"body": text}))
    if not bodies:
        raise PermanentError("a WhatsApp message needs text or attachments")
    return bodies


def template_content(template: Template) -> dict[str, Any]:
    """A `type: template` message: the template's name and language, its parameters as body text in order."""
    if not template.language:
        raise PermanentError(f"the WhatsApp template {template.name} needs its language code (e.g. en_US)")
    content: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.parameters:
        parameters = [{"type": "text", "text": value} for value in template.parameters]
        content["components"] = [{"type": "body", "parameters": parameters}]
    return content


def _media(attachment: Attachment) -> tuple[str, dict[str, Any]]:
    """By `link` (ours are signed links): as image, video or audio where WhatsApp takes its type and size."""
    if not attachment.url:
        raise PermanentError("a WhatsApp attachment needs a URL")
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    kind = content_type.split("/")[0]
    types, limit = MEDIA_KINDS.get(kind, (frozenset(), 0))
    if content_type in types and (attachment.size is None or attachment.size <= limit):
        return kind, {"link": attachment.url}
    document: dict[str, Any] = {"link": attachment.url}
    if attachment.file_name:
        document["filename"] = attachment.file_name
    return "document", document


def _send_body(recipient: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient,
        "type": kind,
        kind: content,
    }


def _token(channel: Channel) -> str:
    token = str(channel.settings.get("access_token") or "")
    if not token:
        raise PermanentError(f"channel {channel.id} has no access_token")
    return token
