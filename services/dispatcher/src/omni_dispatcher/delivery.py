"""Delivering one outgoing message, at most once per successful provider call, in its chat's order.

The message's status in the database is the delivery record: a redelivered event for a message
already `sent` only republishes the confirmation, it never calls the messenger again. Once a messenger
accepted a send, only recording it (the `sent` write and the `message.sent` publish) is ever tried again:
when that fails, the handler raises Unrecorded with the send's outcome, which the consumer keeps trying to
record (`record_outcome`), carrying it through the wait queues in a header while the database is away. A
`failed` message is tried again only when its event comes back, i.e. when an admin replays it. A reply
waits for the earlier replies of its chat to be sent or failed (sequencing.py).

Before sending, a reply is checked against what may have changed since the router accepted it: the channel is
still active, and the messenger's reply window (omni_providers.window) still lets it go, with a tag where that
window needs one. Attachments by our `file_id` go to the provider as uploads (FileUploader) or as signed,
expiring links to ingress's `GET /media/{token}` (outgoing_files).
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict

from omni_contracts import MessageFailed, MessageOutgoing, MessageSent
from omni_dispatcher.pacing import Pacer
from omni_dispatcher.sequencing import Sequencer
from omni_providers import Channel, FileUploader, OutgoingFile, ProviderRegistry, SendResult, delivery_policy
from omni_providers.media import MediaLinks
from omni_providers.window import ReplyDecision, ReplyKind, decide_reply
from omni_runtime.broker import Broker
from omni_runtime.database import Database
from omni_runtime.errors import PermanentError, Unrecorded
from omni_runtime.files import FileStore, served_type
from omni_runtime.metrics import Metrics

log = logging.getLogger(__name__)

DELIVERED = ("sent", "delivered", "read")


@dataclass(frozen=True)
class OutgoingFiles:
    """Where operators' files are (GridFS) and how links to them are made (None: MEDIA_SIGNING_KEY is not set)."""

    store: FileStore
    links: MediaLinks | None


class SendOutcome(BaseModel):
    """What a messenger answered to an accepted send: all that recording it needs (the `x-omni-outcome` header)."""

    model_config = ConfigDict(frozen=True)
    provider_message_id: str | None
    sent_at: datetime


async def deliver(
    event: MessageOutgoing,
    db: Database,
    broker: Broker,
    registry: ProviderRegistry,
    http: httpx.AsyncClient,
    metrics: Metrics,
    pacer: Pacer,
    sequencer: Sequencer,
    files: OutgoingFiles,
) -> None:
    async with sequencer.turn(event.chat_id):
        await _deliver(event, db, broker, registry, http, metrics, pacer, sequencer, files)


async def _deliver(
    event: MessageOutgoing,
    db: Database,
    broker: Broker,
    registry: ProviderRegistry,
    http: httpx.AsyncClient,
    metrics: Metrics,
    pacer: Pacer,
    sequencer: Sequencer,
    files: OutgoingFiles,
) -> None:
    message = await db.messages.find_one({"_id": event.message_id}, {"status": 1, "provider_message_id": 1})
    if message is None:
        raise PermanentError(f"message {event.message_id} is not stored")
    if message["status"] in DELIVERED:
        await broker.publish_event(_sent(event, message.get("provider_message_id")))
        return
    await sequencer.ensure_first(event.chat_id, event.message_id)
    channel = await _sending_channel(db, event)
    provider = registry.get(channel.provider)
    policy = delivery_policy(provider)
    decision = await reply_decision(db, event, provider, channel)
    if not decision.allowed:
        raise PermanentError(decision.reason or f"{channel.provider} refuses this reply now")
    uploads = isinstance(provider, FileUploader)
    outgoing, ours = await outgoing_files(event, files, uploads=uploads, provider=channel.provider)
    if decision.tag is not None:
        outgoing = outgoing.model_copy(update={"tag": decision.tag})
    await pacer.wait(f"chat:{channel.id}:{event.recipient}", policy.per_chat_interval)
    await pacer.wait(f"channel:{channel.id}", 1 / policy.per_channel_rate if policy.per_channel_rate else 0)
    result: SendResult
    if ours and isinstance(provider, FileUploader):
        result = await provider.send_files(http, channel, outgoing, ours)
    else:
        result = await provider.send(http, channel, outgoing)
    metrics.deliveries.labels(channel.provider, "sent").inc()
    outcome = SendOutcome(provider_message_id=result.provider_message_id, sent_at=datetime.now(UTC))
    try:
        await record_sent(event, outcome, db, broker)
    except Exception as exc:  # whatever failed, the send must not run again: only the recording may
        raise Unrecorded(outcome.model_dump_json(), f"{type(exc).__name__}: {exc}") from exc


async def _sending_channel(db: Database, event: MessageOutgoing) -> Channel:
    """The reply's channel, if it still exists and sends."""
    doc = await db.channels.find_one({"_id": event.channel_id})
    if doc is None:
        raise PermanentError(f"channel {event.channel_id} no longer exists")
    channel = Channel.from_document(doc)
    if not channel.is_active:
        raise PermanentError(f"the channel {channel.name} is inactive: replies through it are not sent")
    return channel


async def record_sent(event: MessageOutgoing, outcome: SendOutcome, db: Database, broker: Broker) -> None:
    """The messenger took the reply: the message is `sent` (never moved back from a later status) and its chat hears."""
    await db.messages.update_one(
        {"_id": event.message_id, "status": {"$nin": list(DELIVERED)}},
        {
            "$set": {"status": "sent", "provider_message_id": outcome.provider_message_id, "sent_at": outcome.sent_at},
            "$unset": {"failure_reason": ""},
        },
    )
    await broker.publish_event(_sent(event, outcome.provider_message_id))


async def record_outcome(event: MessageOutgoing, outcome: str, db: Database, broker: Broker) -> None:
    """The consumer's `record` step: a delivery carrying the outcome of its accepted send only records it."""
    await record_sent(event, SendOutcome.model_validate_json(outcome), db, broker)


async def reply_decision(db: Database, event: MessageOutgoing, provider: object, channel: Channel) -> ReplyDecision:
    """Whether the messenger takes this reply now (the window may have closed since the router accepted it)."""
    kind: ReplyKind = "template" if event.template is not None else "text"
    if delivery_policy(provider).reply_window is None:
        return decide_reply(provider, channel, None, datetime.now(UTC), kind)
    last = await last_customer_message_at(db, event.chat_id)
    return decide_reply(provider, channel, last, datetime.now(UTC), kind)


async def last_customer_message_at(db: Database, chat_id: str) -> datetime | None:
    """When the customer last wrote in the chat, as the messenger timed it (`sent_at`; stored time for old rows)."""
    last = await db.messages.find_one(
        {"chat_id": chat_id, "direction": "incoming"}, {"sent_at": 1, "created_at": 1}, sort=[("_id", -1)]
    )
    if last is None:
        return None
    moment = last.get("sent_at") or last.get("created_at")
    return moment if isinstance(moment, datetime) else None


async def outgoing_files(
    event: MessageOutgoing, files: OutgoingFiles, *, uploads: bool, provider: str
) -> tuple[MessageOutgoing, dict[str, OutgoingFile]]:
    """The reply as its provider gets it: each attachment by our `file_id` described from GridFS (name, type, size)
    and, for a provider that fetches by URL, given a signed link (`url`); and those files by id, for uploads."""
    if not any(a.file_id for a in event.attachments):
        return event, {}
    ours: dict[str, OutgoingFile] = {}
    attachments = []
    for attachment in event.attachments:
        if attachment.file_id is None:
            attachments.append(attachment)
            continue
        stored = await files.store.describe(attachment.file_id)
        if stored is None:
            raise PermanentError(f"the file {attachment.file_id} is not stored, so it cannot be sent")
        file = OutgoingFile(
            file_id=stored.file_id,
            file_name=stored.file_name,
            content_type=served_type(stored.content_type or attachment.content_type),
            size=stored.size,
            read=_reader(files.store, stored.file_id),
        )
        url = attachment.url
        if not uploads:
            if files.links is None:
                raise PermanentError(
                    f"{provider} fetches files by URL, and media links are off (MEDIA_SIGNING_KEY is not set)"
                )
            url = files.links.url_for(stored.file_id, time.time())
        described = {"url": url, "file_name": file.file_name, "content_type": file.content_type, "size": file.size}
        attachments.append(attachment.model_copy(update=described))
        ours[stored.file_id] = file
    return event.model_copy(update={"attachments": tuple(attachments)}), ours


def _reader(store: FileStore, file_id: str) -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        found = await store.read(file_id)
        if found is None:
            raise PermanentError(f"the file {file_id} is no longer stored, so it cannot be sent")
        return found[1]

    return read


async def give_up(event: MessageOutgoing | None, cause: str, db: Database, broker: Broker, metrics: Metrics) -> None:
    """Called before a message is parked: it is `failed`, with the cause, and the operator hears of it."""
    if event is None:
        return
    await db.messages.update_one(
        {"_id": event.message_id, "status": {"$nin": list(DELIVERED)}},
        {"$set": {"status": "failed", "failure_reason": cause}},
    )
    metrics.deliveries.labels(event.provider, "failed").inc()
    await broker.publish_event(MessageFailed(message_id=event.message_id, chat_id=event.chat_id, reason=cause))


def _sent(event: MessageOutgoing, provider_message_id: str | None) -> MessageSent:
    return MessageSent(message_id=event.message_id, chat_id=event.chat_id, provider_message_id=provider_message_id)
