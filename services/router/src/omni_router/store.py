"""Chats, contacts and messages in MongoDB. Uniqueness is enforced by indexes, never by check-then-insert."""

from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from omni_contracts import UnifiedMessage
from omni_providers import Channel
from omni_runtime.database import Database, Document
from omni_runtime.ids import new_id

OPEN_STATUSES = ("new", "assigned")


def now() -> datetime:
    return datetime.now(UTC)


def fallback_contact_name(channel: Channel, sender: str) -> str:
    """The reference's name for a contact whose profile is not known (yet)."""
    return f"New contact {channel.name}-{sender}"


def dedupe_key(channel_id: str, provider_message_id: str) -> str:
    return f"{channel_id}:{provider_message_id}"


class ChatStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def channel(self, channel_id: str) -> Channel | None:
        doc = await self.db.channels.find_one({"_id": channel_id})
        return Channel.from_document(doc) if doc else None

    async def contact_for(self, channel: Channel, message: UnifiedMessage) -> Document:
        """Find or create the contact of (channel, sender); a lost creation race reads the winner's."""
        query = {"channel_id": channel.id, "external_id": message.sender}
        contact = await self.db.contacts.find_one(query)
        if contact is not None:
            return contact
        contact = {
            "_id": new_id(),
            **query,
            "name": message.sender_name or fallback_contact_name(channel, message.sender),
            "profile_status": "pending",
            "created_at": now(),
        }
        try:
            await self.db.contacts.insert_one(contact)
        except DuplicateKeyError:
            found = await self.db.contacts.find_one(query)
            assert found is not None
            return found
        return contact

    async def open_chat_for(self, channel: Channel, contact: Document, at: datetime) -> Document:
        """The one open chat of this contact on this channel, opened if there is none."""
        open_key = f"{channel.id}:{contact['_id']}"
        chat = await self.db.chats.find_one({"open_key": open_key})
        if chat is not None:
            return chat
        chat = {
            "_id": new_id(),
            "open_key": open_key,
            "channel_id": channel.id,
            "queue_id": channel.queue_id,
            "contact_id": contact["_id"],
            "contact_name": contact["name"],
            "status": "new",
            "operator_id": None,
            "offered_to": [],
            "offer_version": 0,
            "created_at": at,
            "last_message_at": at,
        }
        try:
            await self.db.chats.insert_one(chat)
        except DuplicateKeyError:
            found = await self.db.chats.find_one({"open_key": open_key})
            assert found is not None
            return found
        return chat

    async def store_incoming(self, chat: Document, message: UnifiedMessage) -> tuple[Document, bool]:
        """Insert the message once; a repeat returns the stored one and False."""
        key = dedupe_key(message.channel_id, message.provider_message_id)
        doc: Document = {
            "_id": new_id(),
            "dedupe_key": key,
            "chat_id": chat["_id"],
            "channel_id": message.channel_id,
            "direction": "incoming",
            "type": message.type,
            "text": message.text,
            "sender": message.sender,
            "provider_message_id": message.provider_message_id,
            "attachments": [
                {
                    "file_id": None,
                    "file_name": a.file_name,
                    "content_type": a.content_type,
                    "size": a.size,
                    "status": "pending",
                }
                for a in message.attachments
            ],
            "location": message.location.model_dump() if message.location else None,
            "status": "received",
            "read": False,
            "routed": False,
            "sent_at": message.sent_at,
            "created_at": now(),
        }
        try:
            await self.db.messages.insert_one(doc)
        except DuplicateKeyError:
            stored = await self.db.messages.find_one({"dedupe_key": key})
            assert stored is not None
            return stored, False
        await self.db.chats.update_one(
            {"_id": chat["_id"], "last_message_at": {"$lt": doc["created_at"]}},
            {"$set": {"last_message_at": doc["created_at"]}},
        )
        return doc, True

    async def find_incoming(self, message: UnifiedMessage) -> Document | None:
        return await self.db.messages.find_one(
            {"dedupe_key": dedupe_key(message.channel_id, message.provider_message_id)}
        )

    async def mark_routed(self, message_id: str) -> None:
        await self.db.messages.update_one({"_id": message_id}, {"$set": {"routed": True}})

    async def chat(self, chat_id: str) -> Document | None:
        return await self.db.chats.find_one({"_id": chat_id})

    async def unread_counts(self, chat_ids: list[str]) -> dict[str, int]:
        if not chat_ids:
            return {}
        pipeline: list[dict[str, Any]] = [
            {"$match": {"chat_id": {"$in": chat_ids}, "direction": "incoming", "read": False}},
            {"$group": {"_id": "$chat_id", "count": {"$sum": 1}}},
        ]
        cursor = await self.db.messages.aggregate(pipeline)
        return {row["_id"]: int(row["count"]) async for row in cursor}
