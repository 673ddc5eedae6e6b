"""Chats in MongoDB (`chats`): one open chat per contact and channel by a sparse unique `open_key`, changes as
compare-and-set updates on `offer_version` that carry their notifications into the chat's outbox (`unpublished`),
and the queries the engine, the sweeps and the desk read them by."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from omni_router.adapters.documents import Database, Document, moment, stored
from omni_router.adapters.upgrades import LEGACY_OUTBOX
from omni_router.domain.access import Visibility
from omni_router.domain.changes import ChatUpdate
from omni_router.domain.integration import IntegrationEvent
from omni_router.domain.model import OPEN_STATUSES, Chat
from omni_router.domain.notifications import Notification, Outbox, Queued
from omni_router.service_layer.ports import Clock, Postponement, Removal, Written

# A chat's notifications written with its change and not yet published, by creation-ordered key.
OUTBOX = "unpublished"
# Fields a change that leaves them empty removes (indexes are sparse on them); others it sets to null.
REMOVED_WHEN_EMPTY = frozenset(
    {
        "offer_expires_at",
        "open_key",
        "due_at",
        "waiting_in",
        "not_before",
        "welcome",
        "csat_key",
        "csat_until",
        "csat_ask_at",
    }
)
OPEN = {"$in": list(OPEN_STATUSES)}
DUPLICATE_KEY = 11000

# The chats in a waiting line: `waiting_in` holds a queue's id (a string) while the chat waits and is removed
# otherwise. A range over all strings rather than `$exists`: MongoDB answers both from the sparse index, but
# nx-27017 reads every chat for `$exists` (2.4 ms at 50,000 chats, on every dispatch sweep, under its global lock;
# tests/integration/test_stand_in.py) and answers the range from the index.
WAITING = {"waiting_in": {"$gt": ""}}


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
        opened_by=doc.get("opened_by"),
        created_at=moment(doc.get("created_at")),
        last_message_at=moment(doc.get("last_message_at")),
        active_at=doc.get("active_at"),
        due_at=doc.get("due_at"),
        closed_at=moment(doc.get("closed_at")),
        closed_by=doc.get("closed_by"),
        close_reason=doc.get("close_reason"),
        outbox_at=doc.get("outbox_at"),
        labels=tuple(doc.get("labels") or ()),
        not_before=doc.get("not_before"),
        welcome=doc.get("welcome"),
        messages_in=int(doc.get("messages_in") or 0),
        messages_out=int(doc.get("messages_out") or 0),
        first_response_at=moment(doc.get("first_response_at")),
        first_response_seconds=doc.get("first_response_seconds"),
        resolution_seconds=doc.get("resolution_seconds"),
        closed_ts=doc.get("closed_ts"),
        csat_key=doc.get("csat_key"),
        csat_until=doc.get("csat_until"),
        csat_message_id=doc.get("csat_message_id"),
        csat_ask_at=doc.get("csat_ask_at"),
        rating=_rating(doc.get("rating")),
    )


def _rating(doc: Document | None) -> Document | None:
    return None if doc is None else {**doc, "created_at": moment(doc.get("created_at"))}


def new_chat_document(chat: Chat) -> Document:
    """A chat as opened: its state fields all present, its outbox empty."""
    return {
        "_id": chat.id,
        "open_key": chat.open_key,
        "opened_by": chat.opened_by,
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
        # What reports select chats by: the creation time as one indexed number.
        "created_ts": chat.created_at.timestamp() if chat.created_at else None,
        "messages_in": 0,
        "messages_out": 0,
        **({"not_before": chat.not_before} if chat.not_before is not None else {}),
        **({"welcome": dict(chat.welcome)} if chat.welcome is not None else {}),
    }


def note_document(note: Queued) -> Document:
    if isinstance(note, IntegrationEvent):
        # The time as text: the stand-in keeps a date given to `$set` as text anyway (docs/testing.md).
        at = note.created_at.isoformat()
        return {
            "event_id": note.event_id,
            "event": note.event,
            "webhook": True,
            "created_at": at,
            "data": dict(note.data),
        }
    return {"event_id": note.event_id, "event": note.event, "operator_id": note.operator_id, "data": dict(note.data)}


def note_from_document(doc: Document) -> Queued:
    if doc.get("webhook"):
        at = moment(doc.get("created_at"))
        assert at is not None
        return IntegrationEvent(doc["event_id"], doc["event"], at, doc.get("data") or {})
    return Notification(doc["event_id"], doc["event"], doc["operator_id"], doc.get("data") or {})


def outbox_of(doc: Document, queued: dict[str, Document] | None = None, *, shared: bool = False) -> Outbox:
    """The chat's outbox to publish: `queued` (default: every note it holds) and the 0.1 list, if any."""
    notes = (doc.get(OUTBOX) or {}) if queued is None else queued
    return Outbox(
        chat_id=doc["_id"],
        queued=tuple((key, note_from_document(note)) for key, note in sorted(notes.items())),
        legacy=tuple(_legacy(note) for note in doc.get(LEGACY_OUTBOX) or ()),
        version=doc.get("offer_version"),
        shared=shared,
    )


def _legacy(doc: Document) -> Notification:
    """A note of the list outbox 0.1 wrote: operators' notifications only."""
    return Notification(doc["event_id"], doc["event"], doc["operator_id"], doc.get("data") or {})


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

    async def get_many(self, chat_ids: Sequence[str]) -> list[Chat]:
        # `$in` on `_id`: the nx-27017 stand-in reads these by its primary key (3 ms for 30 of 20,000 chats), where an
        # `$in` on any other field reads the whole collection.
        if not chat_ids:
            return []
        return [chat_from_document(doc) async for doc in self._chats.find({"_id": {"$in": list(chat_ids)}})]

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

    async def open_many(self, chats: Sequence[Chat]) -> list[Chat]:
        """One unordered `insert_many`: the unique `open_key` refuses each chat whose contact has an open one on
        the channel already (reported per item), and each refused one reads the chat stored."""
        if not chats:
            return []
        refused: set[int] = set()
        try:
            await self._chats.insert_many([new_chat_document(chat) for chat in chats], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            refused = {int(error["index"]) for error in errors}
        opened = []
        for n, chat in enumerate(chats):
            found = await self.find_open(chat.open_key or "") if n in refused else chat
            opened.append(found if found is not None else await self.open(chat))  # closed meanwhile: open it now
        return opened

    async def find_open(self, open_key: str) -> Chat | None:
        found = await self._chats.find_one({"open_key": open_key})
        return chat_from_document(found) if found is not None else None

    async def postpone_many(self, postponements: Sequence[Postponement]) -> None:
        if postponements:
            await self._chats.bulk_write([UpdateOne(*_postponing(p)) for p in postponements], ordered=False)

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
        return [str(q) for q in await self._chats.distinct("waiting_in", WAITING)]

    async def due(self, now: float, limit: int) -> list[Chat]:
        return await self._find({"status": OPEN, "due_at": {"$lte": now}}, "due_at", limit)

    async def postpone(
        self, chat_id: str, active_at: float, due_at: float | None, last_message_at: datetime | None
    ) -> None:
        await self._chats.update_one(*_postponing(Postponement(chat_id, active_at, due_at, last_message_at)))

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

    async def remove_published_many(self, removals: Sequence[Removal]) -> None:
        """The outboxes emptied whole with no change since, in one `bulk_write` (each by its version); if any of them
        changed since (fewer matched), and for the others, one by one (removing notes again is harmless)."""
        whole = [r for r in removals if r.whole and (r.keys or r.legacy)]
        rest = [r for r in removals if not r.whole]
        if whole:
            writes = []
            for r in whole:
                removed = {f"{OUTBOX}.{key}": "" for key in r.keys}
                if r.legacy:
                    removed[LEGACY_OUTBOX] = ""
                query = {"_id": r.outbox.chat_id, "offer_version": _version(r.outbox.version)}
                writes.append(UpdateOne(query, {"$unset": {**removed, "outbox_at": ""}}))
            done = await self._chats.bulk_write(writes, ordered=False)
            if done.matched_count < len(whole):
                rest += whole
        for r in rest:
            await self.remove_published(r.outbox, r.keys, legacy=r.legacy, whole=r.whole)

    async def rename_contact(self, contact_id: str, name: str) -> None:
        # Found through their index, then updated by id: an update filtered by any other field reads every chat in
        # the nx-27017 stand-in, which made each new contact cost more the more chats were stored. Only the chats
        # that do not carry the name yet are written: a profile usually names the contact as its webhook did.
        async for chat in self._chats.find({"contact_id": contact_id}, {"_id": 1, "contact_name": 1}):
            if chat.get("contact_name") != name:
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

    async def welcomed(self, chat_id: str) -> None:
        await self._chats.update_one({"_id": chat_id}, {"$unset": {"welcome": ""}})

    async def replied(self, chat_id: str, at: datetime, seconds: float | None) -> None:
        await self._chats.update_one({"_id": chat_id}, {"$inc": {"messages_out": 1}})
        await self._chats.update_one(
            {"_id": chat_id, "first_response_at": {"$exists": False}},
            {"$set": {"first_response_at": at, "first_response_seconds": seconds}},
        )

    async def awaiting_rating(self, rating_key: str) -> Chat | None:
        # By the one sparse field alone (set only while a rating may come): every customer message without an open
        # chat that starts with a digit asks this.
        doc = await self._chats.find_one({"csat_key": rating_key})
        return chat_from_document(doc) if doc else None

    async def rate(self, chat_id: str, rating: Mapping[str, Any]) -> bool:
        done = await self._chats.update_one(
            {"_id": chat_id, "rating": {"$exists": False}},
            {"$set": {"rating": dict(rating)}, "$unset": {"csat_key": "", "csat_until": ""}},
        )
        return done.modified_count == 1

    async def asked(self, chat_id: str) -> None:
        await self._chats.update_one({"_id": chat_id}, {"$unset": {"csat_ask_at": ""}})

    async def questions_due(self, before: float, limit: int) -> list[Chat]:
        return await self._find({"csat_ask_at": {"$lte": before}}, "csat_ask_at", limit)

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


def _postponing(postponement: Postponement) -> tuple[Document, Document]:
    """The filter and the update of a postponement."""
    later: Document = {"active_at": postponement.active_at}
    if postponement.due_at is not None:
        later["due_at"] = postponement.due_at
    changes: Document = {"$max": later}
    if postponement.last_message_at is not None:
        # `$set`, not `$max`: nx-27017 ignores `$max` on dates (tests/integration/test_stand_in.py). One chat's
        # messages are stored in their order (the router's partitions, one batch at a time), so the last one stored is
        # the latest.
        changes["$set"] = {"last_message_at": postponement.last_message_at}
        # the customer's messages, each stored once: counted with them for the reports
        changes["$inc"] = {"messages_in": postponement.messages_in}
    return {"_id": postponement.chat_id, "status": OPEN}, changes


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
