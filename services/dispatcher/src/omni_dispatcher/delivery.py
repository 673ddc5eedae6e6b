"""Delivering one outgoing message, at most once per successful provider call, in its chat's order.

The message's status in the database is the delivery record: a redelivered event for a message
already `sent` only republishes the confirmation, it never calls the messenger again. A `failed`
message is tried again only when its event comes back, i.e. when an admin replays it. A reply waits
for the earlier replies of its chat to be sent or failed (sequencing.py).
"""

import logging
from datetime import UTC, datetime, timedelta

import httpx

from omni_contracts import MessageFailed, MessageOutgoing, MessageSent
from omni_dispatcher.pacing import Pacer
from omni_dispatcher.sequencing import Sequencer
from omni_providers import Channel, ProviderRegistry, delivery_policy
from omni_runtime.broker import Broker
from omni_runtime.database import Database
from omni_runtime.errors import PermanentError
from omni_runtime.metrics import Metrics

log = logging.getLogger(__name__)

DELIVERED = ("sent", "delivered", "read")


async def deliver(
    event: MessageOutgoing,
    db: Database,
    broker: Broker,
    registry: ProviderRegistry,
    http: httpx.AsyncClient,
    metrics: Metrics,
    pacer: Pacer,
    sequencer: Sequencer,
) -> None:
    async with sequencer.turn(event.chat_id):
        await _deliver(event, db, broker, registry, http, metrics, pacer, sequencer)


async def _deliver(
    event: MessageOutgoing,
    db: Database,
    broker: Broker,
    registry: ProviderRegistry,
    http: httpx.AsyncClient,
    metrics: Metrics,
    pacer: Pacer,
    sequencer: Sequencer,
) -> None:
    message = await db.messages.find_one({"_id": event.message_id}, {"status": 1, "provider_message_id": 1})
    if message is None:
        raise PermanentError(f"message {event.message_id} is not stored")
    if message["status"] in DELIVERED:
        await broker.publish_event(_sent(event, message.get("provider_message_id")))
        return
    await sequencer.ensure_first(event.chat_id, event.message_id)
    doc = await db.channels.find_one({"_id": event.channel_id})
    if doc is None:
        raise PermanentError(f"channel {event.channel_id} no longer exists")
    channel = Channel.from_document(doc)
    provider = registry.get(channel.provider)
    policy = delivery_policy(provider)
    if policy.reply_window is not None:
        await check_reply_window(db, event, policy.reply_window, channel.provider)
    await pacer.wait(f"chat:{channel.id}:{event.recipient}", policy.per_chat_interval)
    await pacer.wait(f"channel:{channel.id}", 1 / policy.per_channel_rate if policy.per_channel_rate else 0)
    result = await provider.send(http, channel, event)
    metrics.deliveries.labels(channel.provider, "sent").inc()
    await db.messages.update_one(
        {"_id": event.message_id, "status": {"$nin": list(DELIVERED)}},
        {
            "$set": {"status": "sent", "provider_message_id": result.provider_message_id, "sent_at": datetime.now(UTC)},
            "$unset": {"failure_reason": ""},
        },
    )
    await broker.publish_event(_sent(event, result.provider_message_id))


async def check_reply_window(db: Database, event: MessageOutgoing, window: timedelta, provider: str) -> None:
    """Refuse a free-form reply the messenger would reject: the customer last wrote too long ago."""
    last = await db.messages.find_one(
        {"chat_id": event.chat_id, "direction": "incoming"}, {"created_at": 1}, sort=[("_id", -1)]
    )
    if last is None or datetime.now(UTC) - last["created_at"] > window:
        hours = window.total_seconds() / 3600
        raise PermanentError(f"outside {provider}'s {hours:g}-hour reply window: the customer has not written since")


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
