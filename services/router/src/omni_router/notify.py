"""Operator notifications: one message per operator on `omni.operators`, routed to `operator.<id>`.

A notification that follows a chat's state change is written into the chat's outbox by the same
atomic update as the change, then published, then removed; what a crash or a broker outage leaves
in an outbox is published by the sweep, with its original `event_id` (consumers dedupe on it).
"""

import hashlib
import logging
import time
from typing import Any

from pymongo import ReturnDocument

from omni_contracts import ChatNotification
from omni_contracts.events import NotificationKind
from omni_router.notifications import record
from omni_router.store import LEGACY_OUTBOX, OUTBOX, OUTBOX_SHARED
from omni_runtime.broker import Broker
from omni_runtime.database import Database, Document
from omni_runtime.errors import BrokerUnavailable
from omni_runtime.ids import new_id
from omni_runtime.topology import OPERATORS_EXCHANGE, operator_routing_key

log = logging.getLogger(__name__)


def notes(
    kind: NotificationKind, operator_ids: list[str], data: dict[str, Any] | None = None, key: str | None = None
) -> list[Document]:
    """Outbox entries for one event to each of `operator_ids`; with `key` (what the event is about, e.g. a message
    and its status) their event ids are derived from it, so handling the same cause again repeats the same ids."""
    return [
        {
            "event_id": derived_id(key, kind, op) if key else new_id(),
            "event": kind,
            "operator_id": op,
            "data": data or {},
        }
        for op in dict.fromkeys(operator_ids)
    ]


def derived_id(key: str, kind: str, operator_id: str) -> str:
    """24 hex characters, like `new_id()`, the same for the same key, event and operator."""
    return hashlib.blake2b(f"{key}|{kind}|{operator_id}".encode(), digest_size=12).hexdigest()


class Notifier:
    def __init__(self, broker: Broker, db: Database) -> None:
        self._broker = broker
        self._db = db

    async def send(
        self,
        kind: NotificationKind,
        chat_id: str,
        operator_ids: list[str],
        data: dict[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> None:
        """Publish at once (for events whose cause is redelivered until this succeeds). With `key`, a repeat
        (the cause redelivered after a crash between the write and this) carries the same event ids."""
        messages = [_message(chat_id, note) for note in notes(kind, operator_ids, data, key)]
        # Stored first, in one write: a stored notification is what the live stream (`GET /api/events`) shows.
        await record(self._db, messages)
        for message in messages:
            await self._publish(message)

    async def deliver(self, chat: Document) -> bool:
        """Publish the chat's outbox in the order it was queued and remove what was published; False if the
        broker refused (the rest stays for the sweep)."""
        queued: dict[str, Document] = dict(sorted((chat.get(OUTBOX) or {}).items()))
        legacy: list[Document] = list(chat.get(LEGACY_OUTBOX) or [])  # written by 0.1 as a list
        outbox = [*legacy, *queued.values()]
        messages = [_message(chat["_id"], note) for note in outbox]
        await record(self._db, messages)
        published = 0
        for note, message in zip(outbox, messages, strict=True):
            try:
                await self._publish(message)
            except BrokerUnavailable:
                # An operator deleted meanwhile has no queue left: their note can never be routed.
                if await self._db.operators.count_documents({"_id": note["operator_id"]}) > 0:
                    log.warning("notification left in the chat outbox for the sweep", extra={"chat_id": chat["_id"]})
                    break
            published += 1
        if published < len(legacy):
            return False
        removed = {f"{OUTBOX}.{key}": "" for key in list(queued)[: published - len(legacy)]}
        if legacy:
            removed[LEGACY_OUTBOX] = ""
        version = chat.get("offer_version", {"$exists": False})
        if removed and published == len(outbox) and not chat.get(OUTBOX_SHARED):
            # All the chat held at its version went out: if no change came since (each change that queues a
            # note increments the version), empty it and end its sweep deadline in one write.
            done = await self._db.chats.update_one(
                {"_id": chat["_id"], "offer_version": version}, {"$unset": {**removed, "outbox_at": ""}}
            )
            if done.matched_count:
                return True
        if removed:
            after = await self._db.chats.find_one_and_update(
                {"_id": chat["_id"]}, {"$unset": removed}, return_document=ReturnDocument.AFTER
            )
            # Nothing left and no change since (every change that queues a note increments the version).
            if after is not None and not after.get(OUTBOX) and not after.get(LEGACY_OUTBOX):
                version = after.get("offer_version", {"$exists": False})
                await self._db.chats.update_one(
                    {"_id": chat["_id"], "offer_version": version}, {"$unset": {"outbox_at": ""}}
                )
        return published == len(outbox)

    async def deliver_stale(self, older_than_seconds: float) -> int:
        """Publish outboxes left behind for longer than `older_than_seconds`."""
        delivered = 0
        stale = self._db.chats.find({"outbox_at": {"$lt": time.time() - older_than_seconds}}).limit(500)
        async for chat in stale:
            if await self.deliver(chat):
                delivered += 1
        return delivered

    async def _publish(self, message: ChatNotification) -> None:
        await self._broker.publish(
            OPERATORS_EXCHANGE,
            operator_routing_key(message.operator_id),
            message.model_dump_json().encode(),
            message_id=message.event_id,
        )


def _message(chat_id: str, note: Document) -> ChatNotification:
    return ChatNotification(
        event_id=note["event_id"],
        event=note["event"],
        chat_id=chat_id,
        operator_id=note["operator_id"],
        data=note.get("data") or {},
    )
