"""Chat actions an operator takes (the reference's OmnichannelChatService), free of HTTP."""

import time
from collections.abc import Awaitable
from typing import Any

from pymongo.errors import DuplicateKeyError

from omni_contracts import Attachment, MessageOutgoing
from omni_router.notify import Notifier
from omni_router.offers import Offers, Refused
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


def may_see(chat: Document, operator: Document, *, offered_before: bool = False) -> bool:
    """What `visibility` selects, for one chat: offered to or held by them (or, with `offered_before`, ever
    offered to them); a supervisor sees all."""
    if operator.get("role") == "supervisor":
        return True
    me = operator["_id"]
    if chat.get("operator_id") == me or me in (chat.get("offered_to") or []):
        return True
    return offered_before and me in (chat.get("offered_ever") or [])


def allowed_actions(chat: Document, operator: Document) -> list[str]:
    """What this operator may do with the chat now (GetChatActions)."""
    if chat["status"] == "closed":
        return []
    me = operator["_id"]
    supervisor = operator.get("role") == "supervisor"
    holder = chat.get("operator_id") == me
    offered = chat["status"] == "new" and me in chat.get("offered_to", [])
    actions: list[str] = []
    if chat["status"] == "new" and (offered or supervisor):
        actions.append("accept")
    if offered:
        actions.append("decline")
    if holder or offered or supervisor:
        actions += ["read", "send", "close"]
    if holder or supervisor:
        actions.append("transfer")
    return actions


# Conflicting writes are retried against a fresh read this many times before answering 409.
ATTEMPTS = 5


class Desk:
    def __init__(self, store: ChatStore, offers: Offers, notifier: Notifier, broker: Broker) -> None:
        self.store = store
        self.db = store.db
        self.offers = offers
        self.notifier = notifier
        self.broker = broker

    async def visible_chat(self, chat_id: str, operator: Document, *, offered_before: bool = False) -> Document:
        """The chat, or 404 whether it does not exist or is not this operator's to see (ids don't leak).
        With `offered_before`, also a chat once offered to them (to answer that someone else has it)."""
        # Read by id, then judged here: with the `$or` in the filter the nx-27017 stand-in read every chat
        # (about a second with 70,000 chats, holding its lock) on every operator action.
        chat = await self.db.chats.find_one({"_id": chat_id})
        if chat is None or not may_see(chat, operator, offered_before=offered_before):
            raise ApiError(404, "chat_not_found", f"no chat {chat_id}")
        return chat

    async def accept(self, chat_id: str, operator: Document) -> Document:
        """AcceptChat: the first accept wins; the others it was offered to get `chat.revoked` (and 409)."""
        chat = await self.visible_chat(chat_id, operator, offered_before=True)
        me = operator["_id"]
        for _ in range(ATTEMPTS):
            if chat["status"] == "closed":
                raise ApiError(409, "chat_closed", "the chat is closed")
            if chat["status"] == "assigned":
                if chat.get("operator_id") == me:
                    return chat
                raise ApiError(409, "chat_taken", "another operator holds this chat")
            if me not in chat.get("offered_to", []) and operator.get("role") != "supervisor":
                raise ApiError(409, "chat_taken", "the chat is no longer offered to you")
            taken = await self._refusing(
                self.offers.assign(chat, me, reason="accepted", online_only=False, where={"status": "new"})
            )
            if taken is not None:
                return taken
            chat = await self._reread(chat_id)
        raise ApiError(409, "chat_changed", "the chat kept changing; try again")

    async def decline(self, chat_id: str, operator: Document) -> Document:
        """Turn down an offer: it moves on to others, and this operator is not offered the chat again."""
        chat = await self.visible_chat(chat_id, operator)
        for _ in range(ATTEMPTS):
            if chat["status"] != "new" or operator["_id"] not in chat.get("offered_to", []):
                raise ApiError(409, "not_offered", "the chat is not offered to you")
            await self.offers.move_on(chat, "declined", decline=operator["_id"])
            chat = await self._reread(chat_id)
            if chat["status"] != "new" or operator["_id"] not in chat.get("offered_to", []):
                return chat
        raise ApiError(409, "chat_changed", "the chat kept changing; try again")

    async def transfer(
        self, chat_id: str, operator: Document, to_operator: str | None, to_queue: str | None
    ) -> Document:
        """Hand the chat to another operator (who holds it at once, capacity permitting) or queue."""
        chat = await self.visible_chat(chat_id, operator)
        if to_operator is not None and await self.db.operators.find_one({"_id": to_operator}, {"_id": 1}) is None:
            raise ApiError(400, "invalid_body", f"unknown operator_id {to_operator}")
        if to_queue is not None and await self.store.queue(to_queue) is None:
            raise ApiError(400, "invalid_body", f"unknown queue_id {to_queue}")
        for _ in range(ATTEMPTS):
            if "transfer" not in allowed_actions(chat, operator):
                closed = chat["status"] == "closed"
                raise ApiError(409, "chat_closed" if closed else "not_allowed", "only the holder or a supervisor can")
            if to_operator is not None:
                if chat.get("operator_id") == to_operator:
                    raise ApiError(409, "not_allowed", "the operator holds the chat already")
                open_ = {"status": {"$in": list(OPEN_STATUSES)}}
                done = await self._refusing(
                    self.offers.assign(chat, to_operator, reason="transferred", online_only=True, where=open_),
                    "operator_unavailable",
                )
            else:
                assert to_queue is not None
                done = await self.offers.requeue(chat, to_queue, reason="transferred")
            if done is not None:
                return await self._reread(chat_id)
            chat = await self._reread(chat_id)
        raise ApiError(409, "chat_changed", "the chat kept changing; try again")

    async def _refusing(self, change: Awaitable[Document | None], code: str | None = None) -> Document | None:
        try:
            return await change
        except Refused as refused:
            raise ApiError(409, code or refused.code, refused.detail) from None

    async def _reread(self, chat_id: str) -> Document:
        chat = await self.store.chat(chat_id)
        if chat is None:
            raise ApiError(404, "chat_not_found", f"no chat {chat_id}")
        return chat

    async def send(
        self,
        chat_id: str,
        operator: Document,
        text: str | None,
        attachments: list[Attachment],
        message_id: str | None = None,
    ) -> tuple[Document, bool]:
        """Store the reply, then publish it; if the broker is down, the outbox sweep publishes it later.

        With a `message_id` (an idempotency key's), a reply already stored under it is answered as it is and
        neither stored nor published again; the second answer says whether that was so (a repeat). Racing
        repeats are told apart by the messages' unique `_id`: one stores and publishes, the others find it.
        """
        if message_id is not None:
            earlier = await self.db.messages.find_one({"_id": message_id})
            if earlier is not None:
                return earlier, True
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
            "_id": message_id or new_id(),
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
            # Until published: when the outbox sweep publishes it if the broker could not confirm at once.
            "publish_due": time.time(),
            "created_at": now(),
        }
        try:
            await self.db.messages.insert_one(message)
        except DuplicateKeyError:
            earlier = await self.db.messages.find_one({"_id": message["_id"]})
            if message_id is None or earlier is None:
                raise
            return earlier, True
        await self.store.postpone_completion(chat)
        await self.publish_outgoing(message)
        return message, False

    async def publish_outgoing(self, message: Document) -> bool:
        channel = await self.store.channel(message["channel_id"])
        if channel is None:
            await self.db.messages.update_one(
                {"_id": message["_id"]},
                {"$set": {"status": "failed", "failure_reason": "channel deleted"}, "$unset": {"publish_due": ""}},
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
        await self.db.messages.update_one(
            {"_id": message["_id"]}, {"$set": {"published": True}, "$unset": {"publish_due": ""}}
        )
        return True

    async def close(self, chat_id: str, operator: Document) -> Document:
        """CloseActiveChat: whoever it was offered to or held by hears `chat.closed`."""
        chat = await self.visible_chat(chat_id, operator)
        for _ in range(ATTEMPTS):
            if "close" not in allowed_actions(chat, operator):
                closed = chat["status"] == "closed"
                raise ApiError(409, "chat_closed" if closed else "not_allowed", "cannot close")
            done = await self.offers.close(chat, by=operator["_id"], reason="closed_by_operator")
            if done is not None:
                return done
            chat = await self._reread(chat_id)
        raise ApiError(409, "chat_changed", "the chat kept changing; try again")

    async def mark_read(self, chat_id: str, operator: Document) -> int:
        await self.visible_chat(chat_id, operator)
        result = await self.db.messages.update_many(
            {"chat_id": chat_id, "direction": "incoming", "read": False}, {"$set": {"read": True}}
        )
        return result.modified_count
