"""Messages in MongoDB (`messages`): customers' messages once by `dedupe_key`, operators' replies by their id, the
reply outbox (`publish_due`), receipts moving a reply's status forward, and stored attachments."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from omni_router.adapters.documents import Database, Document, moment
from omni_router.domain.model import FileRef, Message

INCOMING_FILE_FIELDS = ("index", "file_id", "file_name", "content_type", "size", "status")
DUPLICATE_KEY = 11000
OUTGOING_FILE_FIELDS = ("file_id", "url", "provider_file_id", "content_type", "file_name", "size", "status")


def file_from_document(doc: Document) -> FileRef:
    return FileRef(
        file_name=doc.get("file_name"),
        content_type=doc.get("content_type"),
        size=doc.get("size"),
        status=doc.get("status", "pending"),
        file_id=doc.get("file_id"),
        failure_reason=doc.get("failure_reason"),
        index=doc.get("index"),
        url=doc.get("url"),
        provider_file_id=doc.get("provider_file_id"),
    )


def message_from_document(doc: Document) -> Message:
    return Message(
        id=doc["_id"],
        chat_id=doc.get("chat_id", ""),
        channel_id=doc.get("channel_id", ""),
        direction=doc.get("direction", ""),
        status=doc.get("status", ""),
        type=doc.get("type", "text"),
        text=doc.get("text"),
        attachments=tuple(file_from_document(a) for a in doc.get("attachments") or ()),
        failure_reason=doc.get("failure_reason"),
        created_at=moment(doc.get("created_at")),
        sent_at=moment(doc.get("sent_at")),
        sender=doc.get("sender"),
        provider_message_id=doc.get("provider_message_id"),
        dedupe_key=doc.get("dedupe_key"),
        location=doc.get("location"),
        read=bool(doc.get("read", False)),
        routed=bool(doc.get("routed", False)),
        operator_id=doc.get("operator_id"),
        recipient=doc.get("recipient"),
        published=bool(doc.get("published", False)),
        publish_due=doc.get("publish_due"),
        template=doc.get("template"),
    )


def _files(message: Message, names: Sequence[str]) -> list[Document]:
    return [{name: getattr(f, name) for name in names} for f in message.attachments]


def incoming_document(message: Message) -> Document:
    return {
        "_id": message.id,
        "dedupe_key": message.dedupe_key,
        "chat_id": message.chat_id,
        "channel_id": message.channel_id,
        "direction": "incoming",
        "type": message.type,
        "text": message.text,
        "sender": message.sender,
        "provider_message_id": message.provider_message_id,
        # `index` lets updates address an attachment with the positional operator (see store_attachment).
        "attachments": _files(message, INCOMING_FILE_FIELDS),
        "location": dict(message.location) if message.location is not None else None,
        "status": message.status,
        "read": message.read,
        "routed": message.routed,
        "sent_at": message.sent_at,
        "created_at": message.created_at,
    }


def reply_document(message: Message) -> Document:
    return {
        "_id": message.id,
        "chat_id": message.chat_id,
        "channel_id": message.channel_id,
        "direction": "outgoing",
        "type": message.type,
        "text": message.text,
        "operator_id": message.operator_id,
        "recipient": message.recipient,
        "attachments": _files(message, OUTGOING_FILE_FIELDS),
        "status": message.status,
        "published": message.published,
        "publish_due": message.publish_due,
        "template": dict(message.template) if message.template is not None else None,
        "created_at": message.created_at,
    }


def _reply(channel_id: str, message_id: str | None, provider_message_id: str | None) -> Document:
    found: Document = {"channel_id": channel_id, "direction": "outgoing"}
    if message_id is not None:
        found["_id"] = message_id
    else:
        found["provider_message_id"] = provider_message_id
    return found


class MongoMessages:
    def __init__(self, db: Database) -> None:
        self._messages = db.messages

    async def get(self, message_id: str) -> Message | None:
        doc = await self._messages.find_one({"_id": message_id})
        return message_from_document(doc) if doc else None

    async def incoming(self, dedupe_key: str) -> Message | None:
        doc = await self._messages.find_one({"dedupe_key": dedupe_key})
        return message_from_document(doc) if doc else None

    async def add_incoming(self, message: Message) -> tuple[Message, bool]:
        try:
            await self._messages.insert_one(incoming_document(message))
        except DuplicateKeyError:
            stored = await self._messages.find_one({"dedupe_key": message.dedupe_key})
            assert stored is not None
            return message_from_document(stored), False
        return message, True

    async def add_incoming_many(self, messages: Sequence[Message]) -> list[bool]:
        """One unordered `insert_many`: the unique `dedupe_key` refuses each duplicate on its own (reported per item
        in the BulkWriteError), and the others are stored."""
        if not messages:
            return []
        stored = [True] * len(messages)
        try:
            await self._messages.insert_many([incoming_document(m) for m in messages], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            for error in errors:
                stored[int(error["index"])] = False
        return stored

    async def mark_routed(self, message_id: str) -> None:
        await self._messages.update_one({"_id": message_id}, {"$set": {"routed": True}})

    async def mark_routed_many(self, message_ids: Sequence[str]) -> None:
        # One update by `_id` each, in one command: `{"_id": {"$in": ...}}` would read every message on nx-27017.
        if message_ids:
            await self._messages.bulk_write(
                [UpdateOne({"_id": m}, {"$set": {"routed": True}}) for m in message_ids], ordered=False
            )

    async def add_reply(self, message: Message) -> bool:
        try:
            await self._messages.insert_one(reply_document(message))
        except DuplicateKeyError:
            return False
        return True

    async def add_note(self, note: Message) -> None:
        await self._messages.insert_one(
            {
                "_id": note.id,
                "chat_id": note.chat_id,
                "channel_id": note.channel_id,
                "direction": "internal",
                "type": note.type,
                "text": note.text,
                "operator_id": note.operator_id,
                "attachments": [],
                "status": note.status,
                "created_at": note.created_at,
            }
        )

    async def mark_published(self, message_id: str) -> None:
        await self._messages.update_one(
            {"_id": message_id}, {"$set": {"published": True}, "$unset": {"publish_due": ""}}
        )

    async def fail(self, message_id: str, reason: str) -> None:
        await self._messages.update_one(
            {"_id": message_id},
            {"$set": {"status": "failed", "failure_reason": reason}, "$unset": {"publish_due": ""}},
        )

    async def publish_due(self, before: float) -> list[Message]:
        # By `publish_due` alone, unsorted: one indexed field's range, which the nx-27017 stand-in reads without a
        # scan. A server-side `.sort("_id")` made it walk every message under its global lock instead (100-130 ms at
        # 100,000 messages, 221-297 ms at 300,000, every OUTBOX_SWEEP_SECONDS: the periodic p99 stalls at
        # 1,000,000). The few due replies are put in creation order here.
        due = [doc async for doc in self._messages.find({"publish_due": {"$lt": before}})]
        return [message_from_document(doc) for doc in sorted(due, key=lambda doc: str(doc["_id"]))]

    async def unread_counts(self, chat_ids: Sequence[str]) -> dict[str, int]:
        if not chat_ids:
            return {}
        pipeline: list[dict[str, Any]] = [
            {"$match": {"chat_id": {"$in": list(chat_ids)}, "direction": "incoming", "read": False}},
            {"$group": {"_id": "$chat_id", "count": {"$sum": 1}}},
        ]
        cursor = await self._messages.aggregate(pipeline)
        return {row["_id"]: int(row["count"]) async for row in cursor}

    async def mark_read(self, chat_id: str) -> int:
        # Found through the `chat_id` index, then updated by `_id` in one command: the nx-27017 stand-in reads every
        # message for an update filtered by any other field, even an indexed one (bench/update_filter.py: 123 ms at
        # 100,000 documents against 1.4 ms by `_id`; no server reports what an update examined: measured, not tested).
        unread = {"chat_id": chat_id, "direction": "incoming", "read": False}
        found = [doc["_id"] async for doc in self._messages.find(unread, {"_id": 1})]
        if not found:
            return 0
        result = await self._messages.bulk_write(
            [UpdateOne({"_id": m, "read": False}, {"$set": {"read": True}}) for m in found], ordered=False
        )
        return result.modified_count

    async def page(self, chat_id: str, before: str | None, limit: int) -> list[Message]:
        query: Document = {"chat_id": chat_id}
        if before:
            query["_id"] = {"$lt": before}
        return [message_from_document(m) async for m in self._messages.find(query).sort("_id", -1).limit(limit)]

    async def move_status(
        self,
        channel_id: str,
        *,
        provider_message_id: str | None = None,
        message_id: str | None = None,
        from_statuses: Sequence[str],
        to: str,
        failure_reason: str | None = None,
    ) -> Message | None:
        changes = {"status": to}
        if failure_reason is not None:
            changes["failure_reason"] = failure_reason
        earlier = {"status": {"$in": list(from_statuses)}}
        if message_id is None:
            # A receipt names the provider's id: the reply is found through that index, then moved by `_id` (the
            # stand-in reads every message for an update filtered by any other field), its status checked again.
            found = await self._messages.find_one(
                {**_reply(channel_id, None, provider_message_id), **earlier}, {"_id": 1}
            )
            if found is None:
                return None
            message_id = found["_id"]
        query = {**_reply(channel_id, message_id, None), **earlier}
        doc = await self._messages.find_one_and_update(query, {"$set": changes})
        return message_from_document(doc) if doc else None

    async def reply_in_status(
        self, channel_id: str, status: str, *, provider_message_id: str | None = None, message_id: str | None = None
    ) -> Message | None:
        doc = await self._messages.find_one({**_reply(channel_id, message_id, provider_message_id), "status": status})
        return message_from_document(doc) if doc else None

    async def sent_until(
        self, channel_id: str, recipient: str | None, statuses: Sequence[str], watermark: datetime
    ) -> list[str]:
        """Selected by `created_at` (a reply is sent after it is written), then checked against `sent_at`: the
        nx-27017 stand-in stores dates written by `$set` as text (the dispatcher's `sent_at` among them), so `sent_at`
        is compared here, not in the query, and only when it reads back as a date. Found through the `recipient`
        index (one customer's replies; without it both servers read every message, or every reply in `statuses`),
        then moved by `_id` (move_status). A watermark names its recipient: without one there is nothing to move."""
        if recipient is None:
            return []
        candidates = self._messages.find(
            {
                "channel_id": channel_id,
                "direction": "outgoing",
                "status": {"$in": list(statuses)},
                "recipient": recipient,
                "created_at": {"$lte": watermark},
            },
            {"_id": 1, "sent_at": 1},
        )
        return [doc["_id"] async for doc in candidates if not _after(doc.get("sent_at"), watermark)]

    async def store_attachment(
        self,
        message_id: str,
        index: int,
        *,
        status: str,
        file_id: str | None,
        size: int | None,
        content_type: str | None,
        failure_reason: str | None,
    ) -> None:
        # Addressed by its `index` field with the positional operator: `attachments.<n>.field` by number is ignored by
        # the nx-27017 stand-in (tests/integration/test_stand_in.py).
        await self._messages.update_one(
            {"_id": message_id, "attachments.index": index},
            {
                "$set": {
                    "attachments.$.status": status,
                    "attachments.$.file_id": file_id,
                    "attachments.$.size": size,
                    "attachments.$.content_type": content_type,
                    "attachments.$.failure_reason": failure_reason,
                }
            },
        )

    async def last_from_customer(self, chat_id: str) -> Message | None:
        """Read newest first by `chat_id` alone (nx-27017 uses no compound index), stopping at the first incoming."""
        found = self._messages.find({"chat_id": chat_id}, {"direction": 1, "sent_at": 1, "created_at": 1})
        async for doc in found.sort("_id", -1):
            if doc.get("direction") == "incoming":
                return message_from_document(doc)
        return None

    async def with_file(self, file_id: str) -> Message | None:
        doc = await self._messages.find_one({"attachments.file_id": file_id}, {"chat_id": 1, "attachments": 1})
        return message_from_document(doc) if doc else None


def _after(moment: object, watermark: datetime) -> bool:
    return isinstance(moment, datetime) and moment > watermark
