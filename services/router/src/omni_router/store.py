"""Chats, contacts and messages in MongoDB. Uniqueness is enforced by indexes, never by check-then-insert."""

import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from omni_contracts import UnifiedMessage
from omni_providers import Channel, fallback_contact_name
from omni_runtime.database import Database, Document
from omni_runtime.ids import new_id

OPEN_STATUSES = ("new", "assigned")
# How long a router keeps a channel or queue it read before reading it again: every message needs both, and
# they change seldom. The admin API of the same process forgets them at once; other routers see a change
# within this time.
SETTINGS_TTL_SECONDS = 2.0
# A chat's notifications written with its change and not yet published (see `ChatStore.change`).
OUTBOX = "unpublished"
LEGACY_OUTBOX = "outbox"  # 0.1 kept it as a list under this name; the sweep still publishes those
# Set on a chat `ChatStore.change` answers when its outbox also held notes of others at that version.
OUTBOX_SHARED = "_outbox_shared"


def now() -> datetime:
    return datetime.now(UTC)


def clock() -> float:
    """Epoch seconds: the type of the times the router's sweeps compare (`due_at`, `offer_expires_at`).

    Numbers compare the same everywhere; nx-27017, the test stand-in, stores a datetime given to
    `$set` as a string (tests/integration/test_routing_store.py records it).
    """
    return time.time()


def completion_seconds(queue: Document | None) -> float | None:
    """The queue's completion timeout: a chat with no message for this long is closed."""
    minutes = (queue or {}).get("completion_timeout_minutes")
    return float(minutes) * 60 if minutes else None


def due_time(queue: Document | None, active_at: float) -> float | None:
    """When a chat of `queue` whose last message was at `active_at` falls due, if the queue closes idle chats."""
    seconds = completion_seconds(queue)
    return active_at + seconds if seconds else None


def dedupe_key(channel_id: str, provider_message_id: str) -> str:
    return f"{channel_id}:{provider_message_id}"


async def open_chats(db: Database, fields: Document | None = None) -> AsyncIterator[Document]:
    """Every open chat, read by equality on each open status: closed chats are nearly all of them, and the
    nx-27017 stand-in reads every chat for a `$in` filter."""
    for status in OPEN_STATUSES:
        async for chat in db.chats.find({"status": status}, fields):
            yield chat


def sender_key(channel_id: str, sender: str) -> str:
    """A contact's lookup key: the channel and the sender's id there."""
    return f"{channel_id}:{sender}"


def waiting_line(chat: Document, changes: Document, unset: Iterable[str]) -> Document:
    """How a change leaves the chat's place in its queue's waiting line: `waiting_in` holds the queue's id
    while the chat waits (new, offered to nobody), so the line is read through an index of its own."""
    after = {**chat, **changes}
    for name in unset:
        after.pop(name, None)
    if after.get("waiting") and after.get("status") == "new" and after.get("queue_id"):
        return {"$set": {"waiting_in": after["queue_id"]}}
    return {"$unset": {"waiting_in": ""}}


class ChatStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._settings: dict[tuple[str, str], tuple[float, Document]] = {}

    async def _setting(self, collection: str, item_id: str) -> Document | None:
        """A channel or queue, read at most SETTINGS_TTL_SECONDS ago (not to be changed by the caller)."""
        key = (collection, item_id)
        at = time.monotonic()
        kept = self._settings.get(key)
        if kept is not None and at - kept[0] < SETTINGS_TTL_SECONDS:
            return kept[1]
        doc = await self.db[collection].find_one({"_id": item_id})
        if doc is None:
            self._settings.pop(key, None)
        else:
            self._settings[key] = (at, doc)
        return doc

    def forget_settings(self) -> None:
        """Channels or queues changed: read them again next time."""
        self._settings.clear()

    async def channel(self, channel_id: str) -> Channel | None:
        doc = await self._setting("channels", channel_id)
        return Channel.from_document(doc) if doc else None

    async def contact_for(self, channel: Channel, message: UnifiedMessage) -> Document:
        """Find or create the contact of (channel, sender); a lost creation race reads the winner's."""
        key = sender_key(channel.id, message.sender)
        contact = await self.db.contacts.find_one({"sender_key": key})
        if contact is not None:
            return contact
        query = {"channel_id": channel.id, "external_id": message.sender}
        contact = {
            "_id": new_id(),
            "sender_key": key,
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
            if "sender_key" not in found:  # stored before 0.2: found by the slower query once
                await self.db.contacts.update_one({"_id": found["_id"]}, {"$set": {"sender_key": key}})
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
            # Operators the chat is offered to now (`offered_ever`: at any time); `reserved_for` is the one
            # whose capacity unit the offer holds, `declined_by` those never to be offered it again.
            "offered_to": [],
            "offered_ever": [],
            "reserved_for": None,
            "declined_by": [],
            "waiting": False,
            # Incremented by every change of status, holder or offers: the compare-and-set token.
            "offer_version": 0,
            OUTBOX: {},
            "created_at": at,
            "last_message_at": at,
            # `active_at` and `due_at` (epoch seconds) are set by the first message's `postpone_completion`.
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
                    # `index` lets updates address the item with the positional operator: setting
                    # `attachments.<n>.field` by number is ignored by the nx-27017 stand-in.
                    "index": index,
                    "file_id": None,
                    "file_name": a.file_name,
                    "content_type": a.content_type,
                    "size": a.size,
                    "status": "pending",
                }
                for index, a in enumerate(message.attachments)
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
        await self.postpone_completion(chat, last_message_at=doc["created_at"])
        return doc, True

    async def postpone_completion(self, chat: Document, last_message_at: datetime | None = None) -> None:
        """A message went in or out: the chat's completion timeout starts again (and, for a customer's
        message, the chat's last message time moves on), in one write."""
        active_at = clock()
        later: Document = {"active_at": active_at}
        due = due_time(await self.queue(chat.get("queue_id")), active_at)
        if due is not None:
            later["due_at"] = due
        update: Document = {"$max": later}
        if last_message_at is not None:
            # `$set`, not `$max`: nx-27017 ignores `$max` on dates. One chat's messages are stored one at a
            # time in their order (the router's partitions), so the last one stored is the latest.
            update["$set"] = {"last_message_at": last_message_at}
        await self.db.chats.update_one({"_id": chat["_id"], "status": {"$in": list(OPEN_STATUSES)}}, update)

    async def reschedule(self, chat: Document) -> bool:
        """Move a chat's due time to what its queue says now (its timeout or its queue may have changed
        since it was set); False if it is due indeed."""
        due = due_time(await self.queue(chat.get("queue_id")), float(chat.get("active_at") or 0))
        if due is not None and due <= clock():
            return False
        update = {"$set": {"due_at": due}} if due is not None else {"$unset": {"due_at": ""}}
        await self.db.chats.update_one({"_id": chat["_id"], "due_at": chat["due_at"]}, update)
        return True

    async def queue(self, queue_id: str | None) -> Document | None:
        return await self._setting("queues", queue_id) if queue_id else None

    async def change(
        self,
        chat: Document,
        changes: Document,
        *,
        unset: Iterable[str] = (),
        notify: Iterable[Document] = (),
        where: Document | None = None,
    ) -> Document | None:
        """Apply `changes` if the chat is still the version read, queueing `notify` in its outbox in the
        same atomic update; None if another change came first (re-read and decide again).

        The outbox (`unpublished`) maps a creation-ordered key to each note. A change only adds keys, never
        writes back the outbox it read: a publisher that removed its notes meanwhile (which does not change
        the version) must not get them back. The answer's outbox holds only this change's notes, for the
        caller to publish; notes queued by others are theirs (or the sweep's) to publish."""
        queued = {new_id(): note for note in notify}
        update: dict[str, Any] = {
            "$set": {**changes, **{f"{OUTBOX}.{key}": note for key, note in queued.items()}},
            "$inc": {"offer_version": 1},
        }
        if queued:
            update["$set"]["outbox_at"] = chat.get("outbox_at") or clock()
        fields = {name: "" for name in unset}
        line = waiting_line(chat, changes, unset)
        update["$set"].update(line.get("$set", {}))
        fields.update(line.get("$unset", {}))
        if fields:
            update["$unset"] = fields
        query = {"_id": chat["_id"], "offer_version": chat.get("offer_version", 0), **(where or {})}
        updated = await self.db.chats.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        if updated is None:
            return None
        shared = set(updated.get(OUTBOX) or {}) != set(queued) or bool(updated.get(LEGACY_OUTBOX))
        return {**updated, OUTBOX: queued, OUTBOX_SHARED: shared}

    async def backfill_waiting_line(self) -> int:
        """Chats that started waiting before `waiting_in` existed (0.1) join their queue's line; run at start."""
        joined = 0
        stray = {"status": "new", "waiting": True, "waiting_in": {"$exists": False}}
        async for chat in self.db.chats.find(stray, {"queue_id": 1}):
            done = await self.db.chats.update_one(
                {"_id": chat["_id"], **stray}, {"$set": {"waiting_in": chat["queue_id"]}}
            )
            joined += done.modified_count
        return joined

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
