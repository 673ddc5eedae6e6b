"""Contacts in MongoDB (`contacts`): one per channel and sender, found by `sender_key` (its own unique index)."""

from pymongo.errors import DuplicateKeyError

from omni_router.adapters.documents import Database, Document, moment
from omni_router.adapters.upgrades import key_contact
from omni_router.domain.model import Contact, sender_key


def contact_from_document(doc: Document) -> Contact:
    return Contact(
        id=doc["_id"],
        channel_id=doc.get("channel_id", ""),
        external_id=doc.get("external_id", ""),
        name=doc.get("name", ""),
        profile_status=doc.get("profile_status", "pending"),
        photo_url=doc.get("photo_url"),
        created_at=moment(doc.get("created_at")),
    )


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
            return contact_from_document(found)
        query = {"channel_id": contact.channel_id, "external_id": contact.external_id}
        doc = {
            "_id": contact.id,
            "sender_key": key,
            **query,
            "name": contact.name,
            "profile_status": contact.profile_status,
            "created_at": contact.created_at,
        }
        try:
            await self._contacts.insert_one(doc)
        except DuplicateKeyError:
            found = await self._contacts.find_one(query)
            assert found is not None
            await key_contact(self._db, found, key)
            return contact_from_document(found)
        return contact

    async def find(self, sender_key: str) -> Contact | None:
        found = await self._contacts.find_one({"sender_key": sender_key})
        return contact_from_document(found) if found is not None else None

    async def resolve(self, contact_id: str, name: str, photo_url: str | None) -> None:
        await self._contacts.update_one(
            {"_id": contact_id}, {"$set": {"name": name, "photo_url": photo_url, "profile_status": "resolved"}}
        )
