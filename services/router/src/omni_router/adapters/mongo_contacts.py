"""Contacts in MongoDB (`contacts`): one per channel and sender, found by `sender_key` (its own unique index)."""

from collections.abc import Mapping, Sequence

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from omni_router.adapters.documents import Database, Document, moment
from omni_router.adapters.upgrades import key_contact
from omni_router.domain.model import Contact, Identity, sender_key
from omni_router.service_layer.ports import Naming, Resolved

DUPLICATE_KEY = 11000
# How many merges a sender's contact is followed through (each merge re-points the ones before, so one is usual).
MAX_HOPS = 8


def contact_from_document(doc: Document) -> Contact:
    return Contact(
        id=doc["_id"],
        channel_id=doc.get("channel_id", ""),
        external_id=doc.get("external_id", ""),
        name=doc.get("name", ""),
        profile_status=doc.get("profile_status", "pending"),
        photo_url=doc.get("photo_url"),
        created_at=moment(doc.get("created_at")),
        attributes={str(k): str(v) for k, v in (doc.get("attributes") or {}).items()},
        identities=tuple(
            Identity(str(i.get("channel_id", "")), str(i.get("external_id", ""))) for i in doc.get("identities") or ()
        ),
        merged_ids=tuple(doc.get("merged_ids") or ()),
        merged_into=doc.get("merged_into"),
        name_edited=bool(doc.get("name_edited", False)),
    )


def _new_document(contact: Contact) -> Document:
    return {
        "_id": contact.id,
        "sender_key": sender_key(contact.channel_id, contact.external_id),
        "channel_id": contact.channel_id,
        "external_id": contact.external_id,
        "name": contact.name,
        "profile_status": contact.profile_status,
        "created_at": contact.created_at,
    }


class MongoContacts:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._contacts = db.contacts

    async def get(self, contact_id: str) -> Contact | None:
        doc = await self._contacts.find_one({"_id": contact_id})
        return contact_from_document(doc) if doc else None

    async def find_or_add(self, contact: Contact) -> Contact:
        """Looked up by one field: nx-27017 uses no compound index for lookups (a lookup by channel and sender read
        every contact of the channel); the compound unique index still refuses a second contact of a sender, and a
        lost creation race reads the winner's."""
        key = sender_key(contact.channel_id, contact.external_id)
        found = await self._contacts.find_one({"sender_key": key})
        if found is not None:
            return await self._kept(contact_from_document(found))
        try:
            await self._contacts.insert_one(_new_document(contact))
        except DuplicateKeyError:
            return await self._winner(contact)
        return contact

    async def add_many(self, contacts: Sequence[Contact]) -> list[Contact]:
        """One unordered `insert_many`: the unique indexes refuse each contact a sender has already (reported per
        item in the BulkWriteError), and each refused one is read again (the winner's)."""
        if not contacts:
            return []
        refused: set[int] = set()
        try:
            await self._contacts.insert_many([_new_document(c) for c in contacts], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            refused = {int(error["index"]) for error in errors}
        return [await self._winner(contact) if n in refused else contact for n, contact in enumerate(contacts)]

    async def _winner(self, contact: Contact) -> Contact:
        """The sender's contact stored before `contact` could be (a lost creation race), keyed by its sender."""
        key = sender_key(contact.channel_id, contact.external_id)
        found = await self._contacts.find_one({"sender_key": key})
        if found is None:
            query = {"channel_id": contact.channel_id, "external_id": contact.external_id}
            found = await self._contacts.find_one(query)
            assert found is not None
            await key_contact(self._db, found, key)
        return await self._kept(contact_from_document(found))

    async def find(self, sender_key: str) -> Contact | None:
        """The contact of a sender key (the one a merged contact went into)."""
        found = await self._contacts.find_one({"sender_key": sender_key})
        return await self._kept(contact_from_document(found)) if found is not None else None

    async def _kept(self, contact: Contact) -> Contact:
        """The contact a merged one went into (through later merges too); the contact itself if it is not merged."""
        for _ in range(MAX_HOPS):
            if contact.merged_into is None:
                return contact
            doc = await self._contacts.find_one({"_id": contact.merged_into})
            if doc is None:
                return contact
            contact = contact_from_document(doc)
        return contact

    async def edit(self, contact_id: str, name: str | None, attributes: Mapping[str, str] | None) -> Contact | None:
        changes: Document = {}
        if name is not None:
            changes["name"] = name
            changes["name_edited"] = True
        if attributes is not None:
            changes["attributes"] = dict(attributes)
        if changes:
            await self._contacts.update_one({"_id": contact_id}, {"$set": changes})
        return await self.get(contact_id)

    async def absorb(self, contact: Contact) -> None:
        identities = [{"channel_id": i.channel_id, "external_id": i.external_id} for i in contact.identities]
        changes = {
            "identities": identities,
            "merged_ids": list(contact.merged_ids),
            "attributes": dict(contact.attributes),
        }
        await self._contacts.update_one({"_id": contact.id}, {"$set": changes})

    async def mark_merged(self, contact_id: str, into_id: str) -> None:
        await self._contacts.update_one({"_id": contact_id}, {"$set": {"merged_into": into_id}})

    async def resolve(self, contact_id: str, name: str, photo_url: str | None) -> Resolved | None:
        """One write when the profile names the contact (the usual case): the contact as it is after it (read as it
        was before, to tell whether the name changed)."""
        resolved: Document = {"photo_url": photo_url, "profile_status": "resolved"}
        named = await self._contacts.find_one_and_update(
            {"_id": contact_id, "name_edited": {"$in": [None, False]}},
            {"$set": {**resolved, "name": name}},
            return_document=ReturnDocument.BEFORE,
        )
        if named is not None:
            renamed = named.get("name") != name or named.get("profile_status") != "pending"
            return Resolved(contact_from_document({**named, **resolved, "name": name}), renamed)
        await self._contacts.update_one({"_id": contact_id}, {"$set": resolved})
        return None

    async def resolve_many(self, profiles: Sequence[Naming]) -> list[Resolved | None]:
        """Two commands for them all: the contacts read by `_id`, then written in one ordered bulk write, each as
        `resolve` would (its name set unless an operator named it, compared again by the write). A write that
        matched fewer contacts than the read found (an operator named one, or it changed otherwise, meanwhile) leaves
        each to `resolve` alone, which is safe to repeat: a contact resolved already counts as `renamed`."""
        if not profiles:
            return []
        before = await self._read_before([p.contact_id for p in profiles])
        writes: list[UpdateOne] = []
        for profile in profiles:
            doc = before.get(profile.contact_id)
            if doc is None:
                continue
            resolved: Document = {"photo_url": profile.photo_url, "profile_status": "resolved"}
            if doc.get("name_edited"):
                writes.append(UpdateOne({"_id": profile.contact_id}, {"$set": resolved}))
            else:
                named = {"_id": profile.contact_id, "name_edited": {"$in": [None, False]}}
                writes.append(UpdateOne(named, {"$set": {**resolved, "name": profile.name}}))
        if writes and (await self._contacts.bulk_write(writes, ordered=True)).matched_count != len(writes):
            return [await self.resolve(p.contact_id, p.name, p.photo_url) for p in profiles]
        answers: list[Resolved | None] = []
        for profile in profiles:
            doc = before.get(profile.contact_id)
            if doc is None or doc.get("name_edited"):
                answers.append(None)
                continue
            after = {**doc, "photo_url": profile.photo_url, "profile_status": "resolved", "name": profile.name}
            renamed = doc.get("name") != profile.name or doc.get("profile_status") != "pending"
            answers.append(Resolved(contact_from_document(after), renamed))
        return answers

    async def _read_before(self, contact_ids: Sequence[str]) -> dict[str, Document]:
        """The contacts as they are before `resolve_many` writes them, by `_id`."""
        return {
            doc["_id"]: doc async for doc in self._contacts.find({"_id": {"$in": list(dict.fromkeys(contact_ids))}})
        }
