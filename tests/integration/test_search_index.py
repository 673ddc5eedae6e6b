"""The search's postings on a real server: a contact renamed keeps the postings of the words it kept, brought up to
date, and loses those of the words it lost; each of those writes addresses a posting by `_id` (the nx-27017
stand-in reads every posting for an update or delete filtered by any other field, and there are a few postings for
every stored message)."""

from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from omni_router.adapters.search_index import MongoSearchIndex
from omni_router.domain.search import SearchEntry
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.settings import Settings
from tests.support.commands import Writes

pytestmark = pytest.mark.integration


@pytest.fixture
async def watched(db: Database, settings: Settings) -> AsyncIterator[tuple[MongoSearchIndex, Writes]]:
    await ensure_indexes(db)
    writes = Writes()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True, event_listeners=[writes])
    yield MongoSearchIndex(client[db.name]), writes
    await client.close()


def contact(words: tuple[str, ...]) -> SearchEntry:
    return SearchEntry(id="contact1", kind="contact", contact_id="contact1", text=" ".join(words), words=words)


async def test_a_renamed_contact_s_postings_are_rewritten_and_removed_by_id(
    watched: tuple[MongoSearchIndex, Writes], db: Database
) -> None:
    search, writes = watched
    await db.search_words.insert_many([{"key": f"other{n:04d} entry{n}", "entry_id": f"entry{n}"} for n in range(200)])
    await search.put(contact(("anna", "berg")))
    await search.put(contact(("berg", "carlsen")))  # "anna" lost, "berg" kept, "carlsen" new

    assert [e.id for e in await search.with_word("anna", None, 10)] == []
    kept = await search.with_word("berg", None, 10)
    assert [e.words for e in kept] == [("berg", "carlsen")]
    assert [e.id for e in await search.with_word("carlsen", None, 10)] == ["contact1"]
    on_postings = writes.on("search_words")
    assert len(on_postings) == 3  # the postings of the new words brought up to date, "anna"'s removed
    assert all(list(query) == ["_id"] for query in on_postings), on_postings


async def test_a_contact_put_again_as_it_is_is_one_read(watched: tuple[MongoSearchIndex, Writes], db: Database) -> None:
    search, writes = watched
    await search.put_many([contact(("anna", "berg"))])  # a batch's new customer
    before = len(writes.filters)
    inserted = await db.search_words.count_documents({})

    await search.put(contact(("anna", "berg")))  # a profile that names the contact as its webhook did

    assert len(writes.filters) == before
    assert await db.search_words.count_documents({}) == inserted
    assert [e.id for e in await search.with_word("berg", None, 10)] == ["contact1"]


async def test_an_entry_whose_postings_were_not_all_written_is_rewritten(
    watched: tuple[MongoSearchIndex, Writes], db: Database
) -> None:
    """A crash between the entry's write and its postings' leaves it not posted: putting it again writes them."""
    search, _ = watched
    await search.put(contact(("anna", "berg")))
    await db.search_words.delete_many({})  # its postings lost, as if the crash came before them
    await db.search_entries.update_one({"_id": "contact1"}, {"$set": {"posted": False}})

    await search.put(contact(("anna", "berg")))

    assert [e.id for e in await search.with_word("anna", None, 10)] == ["contact1"]
    assert [e.id for e in await search.with_word("berg", None, 10)] == ["contact1"]
    assert (await db.search_entries.find_one({"_id": "contact1"}) or {}).get("posted")  # 1 on the stand-in
