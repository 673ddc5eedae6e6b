"""Chats in MongoDB (`chats`): one open chat per contact and channel by a sparse unique `open_key`, changes as
compare-and-set updates on `offer_version` that carry their notifications into the chat's outbox (`unpublished`),
and the queries the engine, the sweeps and the desk read them by."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from omni_router.adapters.documents import Database, Document, moment, stored
from omni_router.adapters.upgrades import LEGACY_OUTBOX
from omni_router.domain.access import Visibility
from omni_router.domain.changes import ChatUpdate
from omni_router.domain.model import OPEN_STATUSES, Chat
from omni_router.domain.notifications import Notification, Outbox
from omni_router.service_layer.ports import Clock, Written

# A chat's notifications written with its change and not yet published, by creation-ordered key.
OUTBOX = "unpublished"
# Fields a change that leaves them empty removes (indexes are sparse on them); others it sets to null.
REMOVED_WHEN_EMPTY = frozenset({"offer_expires_at", "open_key", "due_at", "waiting_in"})
OPEN = {"$in": list(OPEN_STATUSES)}


def chat_from_document(doc: Document) -> Chat:
    return Chat(
        id=doc["_id"],
        channel_id=doc.get("channel_id", ""),
        queue_id=doc.get("queue_id"),
        contact_id=doc.get("contact_id", ""),
        contact_name=doc.get("contact_name"),
        status=doc.get("status", "new"),
        operator_id=doc.get("operator_id"),
        offered_to=tuple(doc.get("offered_to") or ()),
        offered_ever=tuple(doc.get("offered_ever") or ()),
        reserved_for=doc.get("reserved_for"),
        declined_by=tuple(doc.get("declined_by") or ()),
        waiting=bool(doc.get("waiting", False)),
        waiting_in=doc.get("waiting_in"),
        offer_version=doc.get("offer_version"),
        offer_expires_at=doc.get("offer_expires_at"),
        open_key=doc.get("open_key"),
        created_at=moment(doc.get("created_at")),
        last_message_at=moment(doc.get("last_message_at")),
        active_at=doc.get("active_at"),
        due_at=doc.get("due_at"),
        closed_at=moment(doc.get("closed_at")),
        closed_by=doc.get("closed_by"),
        close_reason=doc.get("close_reason"),
        outbox_at=doc.get("outbox_at"),
        labels=tuple(doc.get("labels") or ()),
    )


def new_chat_document(chat: Chat) -> Document:
    """A chat as opened: its state fields all present, its outbox empty."""
    return {
        "_id": chat.id,
        "open_key": chat.open_key,
        "channel_id": chat.channel_id,
        "queue_id": chat.queue_id,
        "contact_id": chat.contact_id,
        "contact_name": chat.contact_name,
        "status": chat.status,
        "operator_id": chat.operator_id,
        "offered_to": list(chat.offered_to),
        "offered_ever": list(chat.offered_ever),
        "reserved_for": chat.reserved_for,
        "declined_by": list(chat.declined_by),
        "waiting": chat.waiting,
        "offer_version": chat.offer_version or 0,
        OUTBOX: {},
        "created_at": chat.created_at,
        "last_message_at": chat.last_message_at,
    }


def note_document(note: Notification) -> Document:
    return {"event_id": note.event_id, "event": note.event, "operator_id": note.operator_id, "data": dict(note.data)}


def note_from_document(doc: Document) -> Notification:
    return Notification(doc["event_id"], doc["event"], doc["operator_id"], doc.get("data") or {})


def outbox_of(doc: Document, queued: dict[str, Document] | None = None, *, shared: bool = False) -> Outbox:
    """The chat's outbox to publish: `queued` (default: every note it holds) and the 0.1 list, if any."""
    notes = (doc.get(OUTBOX) or {}) if queued is None else queued
    return Outbox(
        chat_id=doc["_id"],
        queued=tuple((key, note_from_document(note)) for key, note in sorted(notes.items())),
        legacy=tuple(note_from_document(note) for note in doc.get(LEGACY_OUTBOX) or ()),
        version=doc.get("offer_version"),
        shared=shared,
    )


def visible(visibility: Visibility) -> Document:
    if visibility.operator_id is None:
        return {}
    return {"$or": [{"operator_id": visibility.operator_id}, {"offered_to": visibility.operator_id}]}


class MongoChats:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._chats = db.chats
        self._clock = clock

    async def _find(self, query: Document, sort: str, limit: int, direction: int = 1) -> list[Chat]:
        return [
            chat_from_document(doc)
            for doc in await self._chats.find(query).sort(sort, direction).limit(limit).to_list()
        ]

    async def get(self, chat_id: str) -> Chat | None:
        doc = await self._chats.find_one({"_id": chat_id})
        return chat_from_document(doc) if doc else None

    async def open(self, chat: Chat) -> Chat:
        found = await self._chats.find_one({"open_key": chat.open_key})
        if found is not None:
            return chat_from_document(found)
        try:
            await self._chats.insert_one(new_chat_document(chat))
        except DuplicateKeyError:
            found = await self._chats.find_one({"open_key": chat.open_key})
            assert found is not None
            return chat_from_document(found)
        return chat

    async def change(self, update: ChatUpdate) -> Written | None:
        """The outbox maps a creation-ordered key to each note. A change only adds keys, never writes back the outbox
        it read: a publisher that removed its notes meanwhile (which does not change the version) must not get them
        back. The answer's outbox holds only this change's notes, for the caller to publish; notes queued by others
        are theirs (or the sweep's) to publish."""
        before = update.before
        queued = {self._clock.new_id(): note_document(note) for note in update.notes}
        changes: dict[str, Any] = {"$inc": {"offer_version": 1}, **_writes(update)}
        changes["$set"].update({f"{OUTBOX}.{key}": note for key, note in queued.items()})
        if queued:
            changes["$set"]["outbox_at"] = before.outbox_at or self._clock.time()
        updated = await self._chats.find_one_and_update(_still(update), changes, return_document=ReturnDocument.AFTER)
        if updated is None:
            return None
        shared = set(updated.get(OUTBOX) or {}) != set(queued) or bool(updated.get(LEGACY_OUTBOX))
        return Written(chat_from_document(updated), outbox_of(updated, queued, shared=shared))

    async def waiting(self, queue_id: str, limit: int) -> list[Chat]:
        return await self._find({"waiting_in": queue_id, "status": "new", "waiting": True}, "_id", limit)

    async def offered_in(self, queue_id: str, limit: int) -> list[Chat]:
        return await self._find({"queue_id": queue_id, "status": "new", "waiting": False}, "_id", limit)

    async def offered_to_any(self, operator_ids: Sequence[str], limit: int) -> list[Chat]:
        return await self._find({"status": "new", "offered_to": {"$in": list(operator_ids)}}, "_id", limit)

    async def held_by(self, operator_ids: Sequence[str], queue_ids: Sequence[str], limit: int) -> list[Chat]:
        query = {"status": "assigned", "operator_id": {"$in": list(operator_ids)}, "queue_id": {"$in": list(queue_ids)}}
        return await self._find(query, "_id", limit)

    async def offers_expired(self, now: float, limit: int) -> list[Chat]:
        # By the deadline alone (set only on chats offered and new): with the status too, nx-27017 reads every new
        # chat (35 ms for 16,000 on every sweep) instead of using the deadline's index (1 ms).
        return await self._find({"offer_expires_at": {"$lte": now}}, "offer_expires_at", limit)

    async def drop_offer_deadline(self, chat: Chat) -> None:
        await self._chats.update_one({"_id": chat.id, "status": chat.status}, {"$unset": {"offer_expires_at": ""}})

    async def queues_waiting(self) -> list[str]:
        return [str(q) for q in await self._chats.distinct("waiting_in", {"waiting_in": {"$exists": True}})]

    async def due(self, now: float, limit: int) -> list[Chat]:
        return await self._find({"status": OPEN, "due_at": {"$lte": now}}, "due_at", limit)

    async def postpone(
        self, chat_id: str, active_at: float, due_at: float | None, last_message_at: datetime | None
    ) -> None:
        later: Document = {"active_at": active_at}
        if due_at is not None:
            later["due_at"] = due_at
        changes: Document = {"$max": later}
        if last_message_at is not None:
            # `$set`, not `$max`: nx-27017 ignores `$max` on dates (tests/integration/test_stand_in.py). One chat's
            # messages are stored one at a time in their order (the router's partitions), so the last one stored is
            # the latest.
            changes["$set"] = {"last_message_at": last_message_at}
        await self._chats.update_one({"_id": chat_id, "status": OPEN}, changes)

    async def reschedule(self, chat: Chat, due_at: float | None) -> None:
        changes = {"$set": {"due_at": due_at}} if due_at is not None else {"$unset": {"due_at": ""}}
        await self._chats.update_one({"_id": chat.id, "due_at": chat.due_at}, changes)

    async def stale_outboxes(self, before: float, limit: int) -> list[Outbox]:
        return [outbox_of(doc) for doc in await self._chats.find({"outbox_at": {"$lt": before}}).limit(limit).to_list()]

    async def remove_published(self, outbox: Outbox, keys: Sequence[str], *, legacy: bool, whole: bool) -> None:
        removed = {f"{OUTBOX}.{key}": "" for key in keys}
        if legacy:
            removed[LEGACY_OUTBOX] = ""
        if not removed:
            return
        if whole:
            # Everything the chat held at its version went out: if no change came since (each change that queues a
            # note increments the version), empty it and end its sweep deadline in one write.
            done = await self._chats.update_one(
                {"_id": outbox.chat_id, "offer_version": _version(outbox.version)},
                {"$unset": {**removed, "outbox_at": ""}},
            )
            if done.matched_count:
                return
        after = await self._chats.find_one_and_update(
            {"_id": outbox.chat_id}, {"$unset": removed}, return_document=ReturnDocument.AFTER
        )
        # Nothing left and no change since (every change that queues a note increments the version).
        if after is not None and not after.get(OUTBOX) and not after.get(LEGACY_OUTBOX):
            await self._chats.update_one(
                {"_id": outbox.chat_id, "offer_version": _version(after.get("offer_version"))},
                {"$unset": {"outbox_at": ""}},
            )

    async def rename_contact(self, contact_id: str, name: str) -> None:
        # Found through their index, then updated by id: an update filtered by any other field reads every chat in
        # the nx-27017 stand-in, which made each new contact cost more the more chats were stored.
        async for chat in self._chats.find({"contact_id": contact_id}, {"_id": 1}):
            await self._chats.update_one({"_id": chat["_id"]}, {"$set": {"contact_name": name}})

    async def of_contact(self, contact_id: str) -> list[Chat]:
        # By the contact's index alone, newest first by id (ids grow with time).
        chats = [chat_from_document(doc) async for doc in self._chats.find({"contact_id": contact_id})]
        return sorted(chats, key=lambda chat: chat.id, reverse=True)

    async def move_contact(self, chat: Chat, contact_id: str, contact_name: str) -> None:
        changes: Document = {"contact_id": contact_id, "contact_name": contact_name}
        if chat.open_key is not None:
            changes["open_key"] = f"{chat.channel_id}:{contact_id}"
        try:
            await self._chats.update_one({"_id": chat.id}, {"$set": changes})
        except DuplicateKeyError:
            # The contact kept has an open chat on this channel already: this one stays open under its old key.
            del changes["open_key"]
            await self._chats.update_one({"_id": chat.id}, {"$set": changes})

    async def open_chats(self) -> list[Chat]:
        # By equality on each open status: closed chats are nearly all of them, and the nx-27017 stand-in reads every
        # chat for a `$in` (or `$or`) filter.
        return [
            chat_from_document(doc) for status in OPEN_STATUSES async for doc in self._chats.find({"status": status})
        ]

    async def page(
        self, visibility: Visibility, status: str | None, before: str | None, limit: int, label: str | None = None
    ) -> list[Chat]:
        query: Document = {**visible(visibility), "status": status if status else OPEN}
        if before:
            query["_id"] = {"$lt": before}
        if label is not None:
            query["labels"] = label
        return await self._find(query, "_id", limit, direction=-1)

    async def set_labels(self, chat_id: str, labels: Sequence[str]) -> Chat | None:
        # Not a compare-and-set change: labels are not routing state, and the last operator to set them wins.
        doc = await self._chats.find_one_and_update(
            {"_id": chat_id}, {"$set": {"labels": list(labels)}}, return_document=ReturnDocument.AFTER
        )
        return chat_from_document(doc) if doc else None

    async def drop_label(self, name: str) -> None:
        # Found by the label (a scan: an index on the array `labels` finds nothing in nx-27017), updated by id.
        async for chat in self._chats.find({"labels": name}, {"_id": 1}):
            await self._chats.update_one({"_id": chat["_id"]}, {"$pull": {"labels": name}})

    async def seen_by(self, operator_id: str) -> dict[str, str]:
        # Two one-field lookups rather than one `$or`, which nx-27017 answers by a scan: the chats they hold or held
        # by `operator_id`, and the offers among the new chats (an index on the array `offered_to` finds nothing
        # in nx-27017, tests/integration/test_stand_in.py).
        projection = {"_id": 1, "contact_id": 1, "offered_to": 1}
        seen = {
            c["_id"]: c.get("contact_id", "") async for c in self._chats.find({"operator_id": operator_id}, projection)
        }
        async for chat in self._chats.find({"status": "new"}, projection):
            if operator_id in (chat.get("offered_to") or ()):
                seen[chat["_id"]] = chat.get("contact_id", "")
        return seen

    async def latest_of_contact(self, contact_id: str) -> Chat | None:
        found = await self._find({"contact_id": contact_id}, "_id", 1, direction=-1)
        return found[0] if found else None

    async def open_ids(self, visibility: Visibility) -> list[str]:
        return [c["_id"] async for c in self._chats.find({**visible(visibility), "status": OPEN}, {"_id": 1})]


def _writes(update: ChatUpdate) -> Document:
    """The update's fields as `$set` (and `$unset` for those a change empties that are not kept as null)."""
    to_set: Document = {}
    to_unset: Document = {}
    for name in update.fields:
        value = getattr(update.after, name)
        if value is None and name in REMOVED_WHEN_EMPTY:
            to_unset[name] = ""
        else:
            to_set[name] = stored(value)
    return {"$set": to_set, **({"$unset": to_unset} if to_unset else {})}


def _still(update: ChatUpdate) -> Document:
    """The chat as the update was decided on: the same version, and what its guard asks."""
    guard = update.guard
    query: Document = {"_id": update.before.id, "offer_version": update.before.offer_version or 0}
    query["status"] = guard.statuses[0] if len(guard.statuses) == 1 else {"$in": list(guard.statuses)}
    if guard.due_by is not None:
        query["due_at"] = {"$lte": guard.due_by}
    return query


def _version(version: Any) -> Any:
    """The version a document was read at, as a query matches it (a chat of 0.1 may have none)."""
    return {"$exists": False} if version is None else version
