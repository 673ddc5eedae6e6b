"""Chat actions an operator takes (the reference's OmnichannelChatService), free of HTTP."""

from typing import Any

from omni_contracts import Attachment, MessageOutgoing
from omni_router.notify import Notifier
from omni_router.offers import Offers
from omni_router.store import OPEN_STATUSES, ChatStore, now
from omni_runtime.broker import Broker
from omni_runtime.database import Document
from omni_runtime.errors import BrokerUnavailable
from omni_runtime.ids import new_id
from omni_runtime.web import ApiError


def visibility(operator: Document) -> dict[str, Any]:
    """The chats an operator may see: offered to or held by them; a supervisor sees all."""
    if operator.get("role") == "supervisor":
        return {}
    return {"$or": [{"operator_id": operator["_id"]}, {"offered_to": operator["_id"]}]}


def allowed_actions(chat: Document, operator: Document) -> list[str]:
    mine = chat.get("operator_id") == operator["_id"]
    if chat["status"] == "closed":
        return []
    if chat["status"] == "new" and operator["_id"] in chat.get("offered_to", []):
        return ["accept", "read", "send", "close"]
    if mine or operator.get("role") == "supervisor":
        return ["read", "send", "close", "transfer"]
    return []


class Desk:
    def __init__(self, store: ChatStore, offers: Offers, notifier: Notifier, broker: Broker) -> None:
        self.store = store
        self.db = store.db
        self.offers = offers
        self.notifier = notifier
        self.broker = broker

    async def visible_chat(self, chat_id: str, operator: Document) -> Document:
        """The chat, or 404 whether it does not exist or is not this operator's to see (ids don't leak)."""
        chat = await self.db.chats.find_one({"_id": chat_id, **visibility(operator)})
        if chat is None:
            raise ApiError(404, "chat_not_found", f"no chat {chat_id}")
        return chat

    async def accept(self, chat_id: str, operator: Document) -> Document:
        chat = await self.visible_chat(chat_id, operator)
        me = operator["_id"]
        taken = await self.db.chats.find_one_and_update(
            {"_id": chat_id, "status": "new", "offered_to": me},
            {"$set": {"status": "assigned", "operator_id": me, "offered_to": [me], "assigned_at": now()}},
        )
        if taken is None:
            current = await self.store.chat(chat_id)
            if current is not None and current.get("operator_id") == me and current["status"] == "assigned":
                return current
            if current is not None and current["status"] == "closed":
                raise ApiError(409, "chat_closed", "the chat is closed")
            raise ApiError(409, "chat_taken", "another operator holds this chat")
        others = [op for op in chat.get("offered_to", []) if op != me]
        assigned = {**taken, "status": "assigned", "operator_id": me, "offered_to": [me]}
        await self.notifier.send("chat.assigned", chat_id, [me])
        await self.notifier.send("chat.revoked", chat_id, others, {"reason": "taken"})
        return assigned

    async def send(self, chat_id: str, operator: Document, text: str | None, attachments: list[Attachment]) -> Document:
        """Store the reply, then publish it; if the broker is down, the outbox sweep publishes it later."""
        chat = await self.visible_chat(chat_id, operator)
        if chat["status"] == "closed":
            raise ApiError(409, "chat_closed", "the chat is closed")
        if chat.get("operator_id") not in (None, operator["_id"]) and operator.get("role") != "supervisor":
            raise ApiError(409, "chat_taken", "another operator holds this chat")
        if chat["status"] == "new":
            chat = await self.accept(chat_id, operator)
        contact = await self.db.contacts.find_one({"_id": chat["contact_id"]})
        if contact is None:
            raise ApiError(409, "contact_missing", "the chat's contact no longer exists")
        message: Document = {
            "_id": new_id(),
            "chat_id": chat_id,
            "channel_id": chat["channel_id"],
            "direction": "outgoing",
            "type": "file" if attachments and not text else "text",
            "text": text,
            "operator_id": operator["_id"],
            "recipient": contact["external_id"],
            "attachments": [a.model_dump() | {"status": "stored"} for a in attachments],
            "status": "queued",
            "published": False,
            "created_at": now(),
        }
        await self.db.messages.insert_one(message)
        await self.publish_outgoing(message)
        return message

    async def publish_outgoing(self, message: Document) -> bool:
        channel = await self.store.channel(message["channel_id"])
        if channel is None:
            await self.db.messages.update_one(
                {"_id": message["_id"]}, {"$set": {"status": "failed", "failure_reason": "channel deleted"}}
            )
            return False
        event = MessageOutgoing(
            message_id=message["_id"],
            chat_id=message["chat_id"],
            channel_id=channel.id,
            provider=channel.provider,
            recipient=message["recipient"],
            text=message.get("text"),
            attachments=tuple(Attachment.model_validate(a) for a in message.get("attachments", [])),
        )
        try:
            await self.broker.publish_event(event)
        except BrokerUnavailable:
            return False
        await self.db.messages.update_one({"_id": message["_id"]}, {"$set": {"published": True}})
        return True

    async def close(self, chat_id: str, operator: Document) -> Document:
        chat = await self.visible_chat(chat_id, operator)
        if "close" not in allowed_actions(chat, operator):
            raise ApiError(409, "chat_closed" if chat["status"] == "closed" else "not_allowed", "cannot close")
        closed = await self.db.chats.find_one_and_update(
            {"_id": chat_id, "status": {"$in": list(OPEN_STATUSES)}},
            {
                "$set": {"status": "closed", "closed_at": now(), "closed_by": operator["_id"]},
                "$unset": {"open_key": ""},
            },
        )
        if closed is None:
            raise ApiError(409, "chat_closed", "the chat is closed")
        await self.notifier.send("chat.closed", chat_id, _audience_of(closed), {"reason": "closed_by_operator"})
        return {**closed, "status": "closed"}

    async def mark_read(self, chat_id: str, operator: Document) -> int:
        await self.visible_chat(chat_id, operator)
        result = await self.db.messages.update_many(
            {"chat_id": chat_id, "direction": "incoming", "read": False}, {"$set": {"read": True}}
        )
        return result.modified_count


def _audience_of(chat: Document) -> list[str]:
    if chat.get("operator_id"):
        return [chat["operator_id"]]
    return list(chat.get("offered_to", []))
