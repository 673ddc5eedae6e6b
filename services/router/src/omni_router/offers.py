"""Offering chats to operators by their queue's rule, and telling them about new messages."""

from typing import Any

from omni_router.notify import Notifier
from omni_router.routing import Candidate, RoutingRule, operator_ids_for
from omni_router.store import OPEN_STATUSES
from omni_router.views import chat_view, message_view
from omni_runtime.database import Database, Document


class Offers:
    def __init__(self, db: Database, notifier: Notifier, rules: dict[str, RoutingRule]) -> None:
        self._db = db
        self._notifier = notifier
        self._rules = rules

    async def candidates(self, queue: Document) -> list[Candidate]:
        operators = self._db.operators.find({"_id": {"$in": list(queue.get("operator_ids", []))}})
        return [
            Candidate(
                id=op["_id"],
                status=op.get("status", "offline"),
                role=op.get("role", "operator"),
                max_chats=int(op.get("max_chats") or 0),
                active_chats=await self._db.chats.count_documents({"operator_id": op["_id"], "status": "assigned"}),
            )
            async for op in operators
        ]

    async def route(self, chat: Document, message: Document) -> None:
        """Offer a chat nobody was offered yet; otherwise tell its audience about the new message."""
        if chat.get("operator_id") or chat.get("offered_to"):
            await self._notifier.send("message.new", chat["_id"], audience(chat), {"message": message_view(message)})
            return
        queue = await self._db.queues.find_one({"_id": chat.get("queue_id")})
        if queue is None:
            return
        rule = self._rules[queue["routing_rule"]]
        picked = operator_ids_for(chat.get("operator_id"), rule, await self.candidates(queue))
        if picked:
            await self.offer(chat, picked, {"message": message_view(message)})

    async def offer(self, chat: Document, operator_ids: list[str], data: dict[str, Any]) -> None:
        """Add operators to the chat's offer list; only those newly added are notified."""
        fresh = [op for op in operator_ids if op not in chat.get("offered_to", [])]
        if not fresh:
            return
        updated = await self._db.chats.find_one_and_update(
            {"_id": chat["_id"], "status": "new", "offer_version": chat.get("offer_version", 0)},
            {"$set": {"offered_to": [*chat.get("offered_to", []), *fresh]}, "$inc": {"offer_version": 1}},
        )
        if updated is None:  # someone else changed the offer list first; their notification stands
            return
        offered = {**chat, "offered_to": [*chat.get("offered_to", []), *fresh]}
        await self._notifier.send("chat.offered", chat["_id"], fresh, {"chat": chat_view(offered), **data})

    async def offer_waiting(self, operator: Document) -> None:
        """An operator came online: offer the waiting chats of their queues, oldest first."""
        queue_ids = [q["_id"] async for q in self._db.queues.find({"operator_ids": operator["_id"]})]
        if not queue_ids:
            return
        waiting = self._db.chats.find({"queue_id": {"$in": queue_ids}, "status": "new"}).sort("created_at", 1)
        async for chat in waiting:
            queue = await self._db.queues.find_one({"_id": chat["queue_id"]})
            if queue is None or queue["routing_rule"] not in self._rules:
                continue
            rule = self._rules[queue["routing_rule"]]
            picked = rule(await self.candidates(queue))
            if operator["_id"] in picked:
                await self.offer(chat, [operator["_id"]], {})


def audience(chat: Document) -> list[str]:
    """Who hears about a chat now: its holder, or everyone it is offered to while nobody holds it."""
    if chat.get("operator_id"):
        return [chat["operator_id"]]
    if chat.get("status") in OPEN_STATUSES:
        return list(chat.get("offered_to", []))
    return []
