"""Replies as the router queues them, without the router: a channel, a chat whose customer wrote at a given time, files
in GridFS, and `message.outgoing` published onto the broker (the router's API for these comes later)."""

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from omni_contracts import Attachment, Event, MessageOutgoing, Template
from omni_runtime.broker import Broker
from omni_runtime.database import Database, Document
from omni_runtime.files import FileStore
from omni_runtime.ids import new_id
from omni_runtime.service import topology_of
from omni_runtime.settings import Settings
from tests.support.stack import eventually


async def add_channel(
    db: Database, provider: str, source: str, settings: dict[str, Any], *, name: str = "Acme", is_active: bool = True
) -> str:
    channel_id = new_id()
    await db.channels.insert_one(
        {
            "_id": channel_id,
            "name": name,
            "provider": provider,
            "source": source,
            "queue_id": "q-1",
            "settings": settings,
            "is_active": is_active,
        }
    )
    return channel_id


async def add_chat(db: Database, channel_id: str, customer: str, wrote_at: datetime | None) -> str:
    """An open chat; with `wrote_at`, the customer's message in it, timed by the messenger at `wrote_at`."""
    chat_id = new_id()
    if wrote_at is not None:
        await db.messages.insert_one(
            {
                "_id": new_id(),
                "chat_id": chat_id,
                "channel_id": channel_id,
                "direction": "incoming",
                "type": "text",
                "text": "hello?",
                "sender": customer,
                "status": "received",
                "sent_at": wrote_at,
                "created_at": datetime.now(UTC),
            }
        )
    return chat_id


async def store_file(db: Database, file_name: str, content_type: str, content: bytes) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        yield content

    stored = await FileStore(db).put(file_name, content_type, chunks(), max_bytes=len(content) + 1)
    return stored.file_id


async def publish(settings: Settings, *events: Event) -> None:
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    try:
        for event in events:
            await broker.publish_event(event)
    finally:
        await broker.close()


async def queue_reply(
    db: Database,
    settings: Settings,
    *,
    chat_id: str,
    channel_id: str,
    provider: str,
    recipient: str,
    text: str | None = None,
    file_ids: Sequence[str] = (),
    template: Template | None = None,
) -> str:
    """Store a queued reply as the router does, then publish its `message.outgoing`; its id."""
    message_id = new_id()
    attachments = tuple(Attachment(file_id=file_id) for file_id in file_ids)
    await db.messages.insert_one(
        {
            "_id": message_id,
            "chat_id": chat_id,
            "channel_id": channel_id,
            "direction": "outgoing",
            "type": "file" if attachments and not text else "text",
            "text": text,
            "recipient": recipient,
            "attachments": [a.model_dump() for a in attachments],
            "status": "queued",
            "created_at": datetime.now(UTC),
        }
    )
    event = MessageOutgoing(
        message_id=message_id,
        chat_id=chat_id,
        channel_id=channel_id,
        provider=provider,
        recipient=recipient,
        text=text,
        attachments=attachments,
        template=template,
    )
    await publish(settings, event)
    return message_id


async def settled(db: Database, message_id: str, timeout: float = 20.0) -> Document:
    """The reply once it is sent (or later) or failed."""

    async def check() -> Document | None:
        doc = await db.messages.find_one({"_id": message_id})
        return doc if doc and doc["status"] not in ("queued",) else None

    return await eventually(check, timeout=timeout)
