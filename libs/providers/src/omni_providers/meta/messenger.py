"""Facebook Messenger: page webhooks in, the Send API out, sender profiles from the Graph API.

Wire facts: docs/providers.md, "Facebook Messenger". A request may carry several entries
(pages) and several messaging items each; all are kept. Echoes of the page's own messages are
dropped. Receipts name messages by `mid` or by a watermark (everything sent to that customer before
it), which the router resolves against what it sent.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import httpx
from pydantic import Field, ValidationError

from omni_contracts import Attachment, Location, MessageOutgoing, MessageStatusChanged, MessageType, UnifiedMessage
from omni_providers.base import (
    Channel,
    ChannelLookup,
    DeliveryPolicy,
    Inbound,
    InboundRequest,
    Registration,
    SendResult,
    WebhookRejected,
    WindowTag,
)
from omni_providers.meta.graph import graph_call, node
from omni_providers.meta.webhooks import (
    EpochMillis,
    GraphId,
    WebhookModel,
    at_millis,
    handshake,
    object_list,
    require_signature,
    source_text,
    validated,
    verified_channels,
)
from omni_providers.payloads import parse_json
from omni_runtime.errors import PermanentError, RetryLater
from omni_runtime.settings import Settings
from omni_runtime.web import describe

MEDIA_TYPES: dict[str, MessageType] = {"image": "image", "video": "video", "audio": "audio", "file": "file"}
PROFILE_FIELDS = "first_name,last_name,profile_pic"
HUMAN_AGENT = "HUMAN_AGENT"
# The page events register subscribes the app to: what `receive` reads (echoes are not asked for; they are dropped).
SUBSCRIBED_FIELDS = ("messages", "messaging_postbacks", "message_deliveries", "message_reads")


class Party(WebhookModel):
    id: GraphId


class Coordinates(WebhookModel):
    lat: float = Field(ge=-90, le=90)
    long: float = Field(ge=-180, le=180)


class AttachmentPayload(WebhookModel):
    url: str | None = None
    sticker_id: GraphId | None = None
    coordinates: Coordinates | None = None


class MessengerAttachment(WebhookModel):
    type: str = Field(min_length=1, max_length=64)
    # `fallback` attachments (shared links) may have no payload, only a title and a URL.
    payload: AttachmentPayload | None = None
    title: str | None = None
    url: str | None = None


class MessengerMessage(WebhookModel):
    mid: GraphId
    text: str | None = None
    is_echo: bool = False
    attachments: list[MessengerAttachment] = Field(default_factory=list, max_length=50)


class Postback(WebhookModel):
    mid: GraphId | None = None
    title: str | None = None
    payload: str | None = None


class Delivery(WebhookModel):
    mids: list[GraphId] = Field(default_factory=list)
    watermark: EpochMillis


class Read(WebhookModel):
    watermark: EpochMillis


class MessagingItem(WebhookModel):
    sender: Party
    recipient: Party
    timestamp: EpochMillis | None = None
    message: MessengerMessage | None = None
    postback: Postback | None = None
    delivery: Delivery | None = None
    read: Read | None = None


class PageEntry(WebhookModel):
    id: GraphId
    time: EpochMillis | None = None
    messaging: list[MessagingItem] = Field(default_factory=list)


class PageWebhook(WebhookModel):
    object: Literal["page"]
    entry: list[PageEntry] = Field(min_length=1)


@dataclass(frozen=True)
class MessengerProfile:
    name: str | None
    photo_url: str | None


class MessengerProvider:
    """The `messenger` provider: channel `source` is the page id; settings `page_access_token`, `app_secret`,
    `verify_token` (docs/api.md)."""

    # Free replies within 24 hours; with the HUMAN_AGENT tag up to 7 days where the page has that permission and
    # the channel says so (settings `human_agent_tag: true`). Messenger has no templates for us to send.
    delivery_policy = DeliveryPolicy(
        reply_window=timedelta(hours=24),
        per_channel_rate=300.0,
        window_tag=WindowTag(HUMAN_AGENT, timedelta(days=7), "human_agent_tag"),
    )

    def __init__(self, name: str = "messenger", settings: Settings | None = None) -> None:
        self.name = name
        self.graph = (settings or Settings()).meta_graph_api_url.rstrip("/")

    async def receive(self, request: InboundRequest, channels: ChannelLookup) -> Inbound:
        if request.method == "GET":
            return Inbound(reply=await handshake(self.name, request, channels))
        require_signature(request)
        payload = parse_json(request.body)
        found = await verified_channels(self.name, request, channels, page_ids(payload))
        return convert(self.name, validated(PageWebhook, payload), found)

    async def send(self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing) -> SendResult:
        """One Send API call per part: the text, then each attachment (Messenger carries one per message), each
        with the message's tag when the dispatcher gave it one (HUMAN_AGENT, past the 24-hour window)."""
        token = _token(channel)
        bodies = send_bodies(message)
        last: str | None = None
        for body in bodies:
            answer = await graph_call(
                http,
                "POST",
                node(self.graph, channel.source, "messages"),
                "Messenger Send API",
                token,
                params={"access_token": token},
                json_body=body,
            )
            last = source_text(answer.get("message_id")) or last
        # The last part's id: a receipt for it means every part before it arrived too.
        return SendResult(provider_message_id=last)

    async def register(self, http: httpx.AsyncClient, channel: Channel) -> Registration:
        """The page token must be valid and belong to the channel's page; then the page is subscribed to the app's
        webhooks (`POST /{page-id}/subscribed_apps`), without which Meta sends the page's messages nowhere."""
        missing = [k for k in ("page_access_token", "app_secret", "verify_token") if not channel.settings.get(k)]
        if missing:
            return Registration(ok=False, detail=f"settings need {', '.join(missing)}")
        token = _token(channel)
        me = await graph_call(
            http, "GET", node(self.graph, "me"), "Graph API", token, params={"access_token": token, "fields": "id,name"}
        )
        page = source_text(me.get("id"))
        if page != channel.source:
            return Registration(ok=False, detail=f"the page token belongs to page {page}, not {channel.source}")
        valid = f"page token valid for {me.get('name') or page}"
        fields = ",".join(SUBSCRIBED_FIELDS)
        try:
            answer = await graph_call(
                http,
                "POST",
                node(self.graph, channel.source, "subscribed_apps"),
                "Graph API subscribed_apps",
                token,
                params={"access_token": token, "subscribed_fields": fields},
            )
        except (PermanentError, RetryLater) as exc:
            failed = f"{valid}, but subscribing the page to the app's webhooks failed: {exc}"
            return Registration(ok=False, detail=failed)
        if answer.get("success") is not True:
            return Registration(ok=False, detail=f"{valid}, but Graph did not confirm the page's webhook subscription")
        return Registration(ok=True, detail=f"{valid}; page subscribed to the app's webhooks ({fields})")

    async def fetch_profile(self, http: httpx.AsyncClient, channel: Channel, external_id: str) -> MessengerProfile:
        token = _token(channel)
        profile = await graph_call(
            http,
            "GET",
            node(self.graph, external_id),
            "Messenger profile",
            token,
            params={"fields": PROFILE_FIELDS, "access_token": token},
        )
        names = [profile.get("first_name"), profile.get("last_name")]
        name = " ".join(n.strip() for n in names if isinstance(n, str) and n.strip())
        photo = profile.get("profile_pic")
        return MessengerProfile(name=name or None, photo_url=photo if isinstance(photo, str) and photo else None)


def page_ids(payload: Any) -> list[str]:
    """`entry[].id`: the pages a webhook speaks for, read before the signature is checked."""
    entries = object_list(payload.get("entry")) if isinstance(payload, dict) else []
    ids = [source_text(entry.get("id")) for entry in entries]
    found = [i for i in ids if i]
    if not found:
        raise WebhookRejected(400, "invalid_payload", "entry[].id: no page named")
    return found


def convert(provider: str, webhook: PageWebhook, channels: dict[str, Channel]) -> Inbound:
    inbound = Inbound()
    for entry in webhook.entry:
        channel = channels.get(entry.id)
        if channel is None:
            raise WebhookRejected(400, "invalid_payload", "entry[].id: not the page that was checked")
        for item in entry.messaging:
            try:
                _convert_item(provider, channel, entry, item, inbound)
            except ValidationError as exc:
                raise WebhookRejected(400, "invalid_payload", describe(exc)) from None
    return inbound


def _convert_item(provider: str, channel: Channel, entry: PageEntry, item: MessagingItem, inbound: Inbound) -> None:
    message = _customer_message(provider, channel, entry, item)
    if message is not None:
        inbound.messages.append(message)
    if item.delivery is not None:
        inbound.statuses += _receipts(channel, item.sender.id, "delivered", item.delivery.mids, item.delivery.watermark)
    if item.read is not None:
        inbound.statuses += _receipts(channel, item.sender.id, "read", [], item.read.watermark)


def _customer_message(provider: str, channel: Channel, entry: PageEntry, item: MessagingItem) -> UnifiedMessage | None:
    """What the customer wrote or pressed; None for our own echoes and items that only carry receipts."""
    sent_at = at_millis(item.timestamp if item.timestamp is not None else entry.time)
    common: dict[str, Any] = {
        "provider": provider,
        "channel_id": channel.id,
        "sender": item.sender.id,
        "recipient": channel.source,
        "sent_at": sent_at,
    }
    if item.message is not None and not item.message.is_echo:
        return UnifiedMessage(**common, **_content(item.message))
    pressed = _pressed(entry, item)
    return UnifiedMessage(**common, **pressed) if pressed else None


def _pressed(entry: PageEntry, item: MessagingItem) -> dict[str, Any] | None:
    """A button the customer pressed: what it said is the message; older payloads carry no mid."""
    postback = item.postback
    if postback is None or not (postback.title or postback.payload):
        return None
    mid = postback.mid or f"postback:{item.sender.id}:{item.timestamp or entry.time or 0}"
    return {"provider_message_id": mid, "text": postback.title or postback.payload}


@dataclass
class _Content:
    """A customer message's attachments, sorted into files, a location and notes about what is not fetched."""

    types: list[MessageType] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    location: Location | None = None

    def add(self, attachment: MessengerAttachment) -> None:
        payload = attachment.payload
        if payload is not None and payload.coordinates is not None:
            self.location = Location(latitude=payload.coordinates.lat, longitude=payload.coordinates.long)
            self.types.append("location")
        elif payload is not None and payload.url:
            self.types.append("sticker" if payload.sticker_id else MEDIA_TYPES.get(attachment.type, "file"))
            self.attachments.append(Attachment(url=payload.url))
        else:
            # A fallback (a shared link) or a kind we do not fetch: keep what it says, so nothing is lost.
            self.notes.append(" ".join(p for p in (attachment.title, attachment.url) if p) or f"[{attachment.type}]")


def _content(message: MessengerMessage) -> dict[str, Any]:
    """Type, text, attachments and location of a customer message."""
    content = _Content()
    for attachment in message.attachments:
        content.add(attachment)
    return {
        "provider_message_id": message.mid,
        "type": content.types[0] if content.types else "text",
        "text": "\n".join(p for p in (message.text, *content.notes) if p) or None,
        "attachments": tuple(content.attachments),
        "location": content.location,
    }


def _receipts(
    channel: Channel, customer: str, status: Literal["delivered", "read"], mids: list[str], watermark: int
) -> list[MessageStatusChanged]:
    if mids:
        return [MessageStatusChanged(channel_id=channel.id, provider_message_id=m, status=status) for m in mids]
    return [
        MessageStatusChanged(channel_id=channel.id, status=status, recipient=customer, watermark=at_millis(watermark))
    ]


def send_bodies(message: MessageOutgoing) -> list[dict[str, Any]]:
    """The Send API bodies of one reply: its text, then one per attachment (by URL: ours are signed links)."""
    if message.template is not None:
        raise PermanentError("Messenger does not send templates")
    parts: list[dict[str, Any]] = [{"text": message.text}] if message.text else []
    parts += [{"attachment": _attachment(a)} for a in message.attachments]
    if not parts:
        raise PermanentError("a Messenger message needs text or attachments")
    return [_send_body(message.recipient, part, message.tag) for part in parts]


def _send_body(recipient: str, message: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
    if tag is None:
        return {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": message}
    return {"recipient": {"id": recipient}, "messaging_type": "MESSAGE_TAG", "tag": tag, "message": message}


def _attachment(attachment: Attachment) -> dict[str, Any]:
    if not attachment.url:
        raise PermanentError("a Messenger attachment needs a URL")
    kind = (attachment.content_type or "").split("/")[0]
    return {
        "type": kind if kind in ("image", "video", "audio") else "file",
        "payload": {"url": attachment.url, "is_reusable": True},
    }


def _token(channel: Channel) -> str:
    token = str(channel.settings.get("page_access_token") or "")
    if not token:
        raise PermanentError(f"channel {channel.id} has no page_access_token")
    return token
