"""Delivering one outgoing message, at most once per successful provider call, in its chat's order.

The message's status in the database is the delivery record: a redelivered event for a message
already `sent` only republishes the confirmation, it never calls the messenger again. Once a messenger
accepted a send, only recording it (the `sent` write and the `message.sent` publish) is ever tried again:
when that fails, the handler raises Unrecorded with the send's outcome, which the consumer keeps trying to
record (`record_outcome`), carrying it through the wait queues in a header while the database is away. A
`failed` message is tried again only when its event comes back, i.e. when an admin replays it. A reply
waits for the earlier replies of its chat to be sent or failed (sequencing.py).
"""

import logging
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel, ConfigDict

from omni_contracts import MessageFailed, MessageOutgoing, MessageSent
from omni_dispatcher.pacing import Pacer
from omni_dispatcher.sequencing import Sequencer
from omni_providers import Channel, ProviderRegistry, delivery_policy
from omni_runtime.broker import Broker
from omni_runtime.database import Database
from omni_runtime.errors import PermanentError, Unrecorded
from omni_runtime.metrics import Metrics

log = logging.getLogger(__name__)

DELIVERED = ("sent", "delivered", "read")


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
    outcome = SendOutcome(provider_message_id=result.provider_message_id, sent_at=datetime.now(UTC))
    try:
        await record_sent(event, outcome, db, broker)
    except Exception as exc:  # whatever failed, the send must not run again: only the recording may
        raise Unrecorded(outcome.model_dump_json(), f"{type(exc).__name__}: {exc}") from exc


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
