"""Handling what other services report back: deliveries, receipts, profiles and stored attachments."""

from datetime import datetime
from typing import Any

from omni_contracts import (
    AttachmentStored,
    MessageFailed,
    MessageSent,
    MessageStatusChanged,
    ProfileResolved,
    RouterUpdate,
)
from omni_router.notify import Notifier
from omni_router.offers import audience
from omni_runtime.database import Database

# A receipt never moves a message backwards (a late "delivered" after "read" is ignored).
STATUS_ORDER = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


async def apply_update(update: RouterUpdate, db: Database, notifier: Notifier) -> None:
    match update:
        case MessageSent() | MessageFailed():
            await _notify_delivery(update, db, notifier)
        case MessageStatusChanged():
            await _apply_receipt(update, db, notifier)
        case ProfileResolved():
            await db.contacts.update_one(
                {"_id": update.contact_id},
                {"$set": {"name": update.name, "photo_url": update.photo_url, "profile_status": "resolved"}},
            )
            # Found through their index, then updated by id: an update filtered by any other field reads every
            # chat in the nx-27017 stand-in, which made each new contact cost more the more chats were stored.
            async for chat in db.chats.find({"contact_id": update.contact_id}, {"_id": 1}):
                await db.chats.update_one({"_id": chat["_id"]}, {"$set": {"contact_name": update.name}})
        case AttachmentStored():
            await _apply_attachment(update, db, notifier)


async def _notify_delivery(update: MessageSent | MessageFailed, db: Database, notifier: Notifier) -> None:
    """The dispatcher has already written the status; the chat's audience hears of it."""
    chat = await db.chats.find_one({"_id": update.chat_id})
    if chat is None:
        return
    data = {
        "message_id": update.message_id,
        "status": "sent" if isinstance(update, MessageSent) else "failed",
    }
    if isinstance(update, MessageFailed):
        data["failure_reason"] = update.reason
    await notifier.send(
        "message.status", chat["_id"], audience(chat), data, key=f"{update.message_id}:{data['status']}"
    )


async def _apply_receipt(update: MessageStatusChanged, db: Database, notifier: Notifier) -> None:
    if update.status == "failed":
        # The messenger gave up on a message it had accepted (WhatsApp's `failed` status).
        earlier = ["queued", "sent"]
    else:
        earlier = [s for s, rank in STATUS_ORDER.items() if rank < STATUS_ORDER.get(update.status, 0)]
    outgoing = {"channel_id": update.channel_id, "direction": "outgoing"}
    if update.watermark is not None:
        await _apply_watermark(outgoing, earlier, update, update.watermark, db, notifier)
    elif update.provider_message_id:
        query = {**outgoing, "provider_message_id": update.provider_message_id, "status": {"$in": earlier}}
        await _move_status(query, update, db, notifier)


async def _apply_watermark(
    outgoing: dict[str, Any],
    earlier: list[str],
    update: MessageStatusChanged,
    watermark: datetime,
    db: Database,
    notifier: Notifier,
) -> None:
    """A watermark (Messenger) covers every message sent to the customer up to that moment.

    Selected by `created_at` (a message is sent after it is written), then checked against `sent_at`:
    the nx-27017 stand-in stores dates written by `$set` as text, so `sent_at` is compared here, not
    in the query, and only when it is a date.
    """
    sent = {"$in": [s for s in earlier if s != "queued"]}
    candidates = db.messages.find(
        {**outgoing, "status": sent, "recipient": update.recipient, "created_at": {"$lte": watermark}},
        {"_id": 1, "sent_at": 1},
    )
    covered = [doc["_id"] async for doc in candidates if not _after(doc.get("sent_at"), watermark)]
    for message_id in covered:
        await _move_status({**outgoing, "_id": message_id, "status": sent}, update, db, notifier)


def _after(moment: object, watermark: datetime) -> bool:
    return isinstance(moment, datetime) and moment > watermark


async def _move_status(query: dict[str, Any], update: MessageStatusChanged, db: Database, notifier: Notifier) -> None:
    changes: dict[str, str] = {"status": update.status}
    if update.status == "failed":
        changes["failure_reason"] = update.reason or "the messenger reported the message as failed"
    message = await db.messages.find_one_and_update(query, {"$set": changes})
    if message is None:
        # Moved already: by this very receipt, redelivered after a crash before its notification went out (or by
        # a duplicate of it): notify again, with the same event ids.
        message = await db.messages.find_one({**query, "status": update.status})
        if message is None:
            return
    chat = await db.chats.find_one({"_id": message["chat_id"]})
    if chat is not None:
        data = {"message_id": message["_id"], **changes}
        key = f"{message['_id']}:{update.status}"
        await notifier.send("message.status", chat["_id"], audience(chat), data, key=key)


async def _apply_attachment(update: AttachmentStored, db: Database, notifier: Notifier) -> None:
    await db.messages.update_one(
        {"_id": update.message_id, "attachments.index": update.index},
        {
            "$set": {
                "attachments.$.status": update.status,
                "attachments.$.file_id": update.file_id,
                "attachments.$.size": update.size,
                "attachments.$.content_type": update.content_type,
                "attachments.$.failure_reason": update.failure_reason,
            }
        },
    )
    chat = await db.chats.find_one({"_id": update.chat_id})
    if chat is not None:
        data = {
            "message_id": update.message_id,
            "attachment_index": update.index,
            "attachment_status": update.status,
        }
        key = f"{update.message_id}:attachment:{update.index}:{update.status}"
        await notifier.send("message.status", chat["_id"], audience(chat), data, key=key)
