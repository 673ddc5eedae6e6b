"""Resolved profiles in bulk on a real server (`MongoContacts.resolve_many`, `MongoSearchIndex.put_again`): a batch of
profiles costs a few commands whatever its size, answers what `resolve` would for each, and a contact an operator
named between the read and the write keeps the operator's name (the batch falls back to `resolve` one by one)."""

from collections.abc import AsyncIterator, Sequence

import pytest
from pymongo import AsyncMongoClient

from omni_router.adapters.documents import Document as Doc
from omni_router.adapters.mongo_contacts import MongoContacts
from omni_router.adapters.search_index import MongoSearchIndex
from omni_router.domain.search import SearchEntry
from omni_router.service_layer.ports import Naming
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.settings import Settings
from tests.support.commands import Writes

pytestmark = pytest.mark.integration


@pytest.fixture
async def watched(db: Database, settings: Settings) -> AsyncIterator[tuple[Database, Writes]]:
    """The database through a client whose commands are recorded."""
    await ensure_indexes(db)
    writes = Writes()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True, event_listeners=[writes])
    yield client[db.name], writes
    await client.close()


async def pending(db: Database, *names: str) -> None:
    await db.contacts.insert_many(
        [{"_id": f"c{n}", "channel_id": "ch", "external_id": f"x{n}", "name": name, "profile_status": "pending"}
         for n, name in enumerate(names)]
    )  # fmt: skip


async def test_a_batch_of_profiles_is_two_commands_and_answers_what_resolve_would(
    watched: tuple[Database, Writes], db: Database
) -> None:
    seen, writes = watched
    await pending(db, "Anna", "Bob", "Cleo")
    await db.contacts.update_one({"_id": "c2"}, {"$set": {"name": "Cleo (VIP)", "name_edited": True}})
    contacts = MongoContacts(seen)
    profiles = [Naming(f"c{n}", name, f"https://p/{n}") for n, name in enumerate(["Anna", "Robert", "Cleo"])]

    answers = await contacts.resolve_many([*profiles, Naming("missing", "Nobody", None)])

    assert writes.names == ["find", "update"]  # one read, one bulk write, for four profiles
    anna, bob, cleo, missing = answers
    assert anna is not None and not anna.renamed and anna.contact.name == "Anna"  # named as its webhook did
    assert bob is not None and bob.renamed and bob.contact.name == "Robert"
    assert bob.contact.profile_status == "resolved" and bob.contact.photo_url == "https://p/1"
    assert cleo is None and missing is None  # an operator's name stays, as `resolve` answers
    stored = {doc["_id"]: doc async for doc in db.contacts.find({})}
    assert [stored[f"c{n}"]["name"] for n in range(3)] == ["Anna", "Robert", "Cleo (VIP)"]
    assert {stored[f"c{n}"]["profile_status"] for n in range(3)} == {"resolved"}
    assert stored["c2"]["photo_url"] == "https://p/2"  # the photo set alone
    # A repeat (a redelivered batch) counts as renamed: the chats may not carry the name yet.
    again = await contacts.resolve_many(profiles[:2])
    assert [a.renamed if a else None for a in again] == [True, True]


class OperatorBetween(MongoContacts):
    """An operator names a contact right after the batch read it."""

    def __init__(self, db: Database, contact_id: str) -> None:
        super().__init__(db)
        self._db, self._contact_id = db, contact_id

    async def _read_before(self, contact_ids: Sequence[str]) -> dict[str, Doc]:
        read = await super()._read_before(contact_ids)
        await self._db.contacts.update_one(
            {"_id": self._contact_id}, {"$set": {"name": "Named by an operator", "name_edited": True}}
        )
        return read


async def test_an_operator_naming_a_contact_meanwhile_keeps_the_name(db: Database) -> None:
    await ensure_indexes(db)
    await pending(db, "Anna", "Bob")
    contacts = OperatorBetween(db, "c1")

    anna, bob = await contacts.resolve_many([Naming("c0", "Anna K", None), Naming("c1", "Robert", "https://p/1")])

    assert anna is not None and anna.renamed and anna.contact.name == "Anna K"
    assert bob is None  # as `resolve` answers for a contact an operator named
    stored = await db.contacts.find_one({"_id": "c1"}) or {}
    assert stored["name"] == "Named by an operator"
    assert stored["profile_status"] == "resolved" and stored["photo_url"] == "https://p/1"


def contact(contact_id: str, *words: str) -> SearchEntry:
    return SearchEntry(id=contact_id, kind="contact", contact_id=contact_id, text=" ".join(words), words=words)


async def test_entries_put_again_as_they_are_cost_one_read_and_a_changed_one_is_rewritten(
    watched: tuple[Database, Writes], db: Database
) -> None:
    seen, writes = watched
    search = MongoSearchIndex(seen)
    await search.put_many([contact("c0", "anna"), contact("c1", "bob"), contact("c2", "cleo")])  # new customers
    writes.names.clear()

    await search.put_again([contact("c0", "anna"), contact("c1", "robert"), contact("c2", "cleo")])

    assert writes.names.count("find") == 1 + 1  # the entries read together; "bob"'s posting found by its key
    assert [e.id for e in await search.with_word("robert", None, 10)] == ["c1"]
    assert [e.id for e in await search.with_word("bob", None, 10)] == []  # the lost word's posting removed
    assert [e.id for e in await search.with_word("anna", None, 10)] == ["c0"]
    writes.names.clear()
    await search.put_again([contact("c0", "anna"), contact("c1", "robert")])
    assert writes.names == ["find"]  # all stored as they are
