"""The search index in MongoDB, a word index of our own that works the same on MongoDB and on nx-27017.

`search_entries`: one document per message or contact (its text to show, its words). `search_words`: one posting
per word of an entry, under `key` = "<word> <entry id>" with its own index, so the entries holding a word, newest
first and below a cursor, are one range of one indexed field (`{"key": {"$gt": "<word> ", "$lt": "<word>
<cursor>"}}` sorted by `key`), which nx-27017 answers from the index. A MongoDB text index would not: nx-27017 has no
`$text`, and an index on an array of words finds nothing there (tests/integration/test_stand_in.py). Each posting
carries what the search checks before fetching any text: the entry's kind, chat, contact and all its words.
"""

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from omni_router.adapters.documents import Database, Document, moment
from omni_router.domain.search import SearchEntry

DUPLICATE_KEY = 11000


def _posting(entry: SearchEntry, word: str) -> Document:
    return {
        "key": f"{word} {entry.id}",
        "entry_id": entry.id,
        "kind": entry.kind,
        "chat_id": entry.chat_id,
        "contact_id": entry.contact_id,
        "words": list(entry.words),
        "created_at": entry.created_at,
    }


def _entry(doc: Document, text: str = "") -> SearchEntry:
    return SearchEntry(
        id=doc.get("entry_id") or doc["_id"],
        kind=doc.get("kind", "message"),
        contact_id=doc.get("contact_id", ""),
        text=text or doc.get("text", ""),
        words=tuple(doc.get("words") or ()),
        chat_id=doc.get("chat_id"),
        created_at=moment(doc.get("created_at")),
    )


class MongoSearchIndex:
    def __init__(self, db: Database) -> None:
        self._entries = db.search_entries
        self._words = db.search_words

    async def put(self, entry: SearchEntry) -> None:
        """The entry, then its postings (a repeat finds them there). An entry whose words changed (a contact
        renamed) loses the postings of the words it no longer has."""
        doc = {k: v for k, v in _posting(entry, "").items() if k not in ("key", "entry_id")}
        before = await self._entries.find_one_and_update(
            {"_id": entry.id}, {"$set": {**doc, "text": entry.text}}, upsert=True, return_document=ReturnDocument.BEFORE
        )
        old = set((before or {}).get("words") or ())
        if old and old != set(entry.words):
            await self._words.delete_many({"entry_id": entry.id})
        try:
            await self._words.insert_many([_posting(entry, word) for word in entry.words], ordered=False)
        except BulkWriteError as error:
            if any(e.get("code") != DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
                raise

    async def with_word(self, word: str, before: str | None, limit: int) -> list[SearchEntry]:
        upper = f"{word} {before}" if before else f"{word}!"  # "!" sorts just after the separator " "
        found = self._words.find({"key": {"$gt": f"{word} ", "$lt": upper}}).sort("key", -1).limit(limit)
        return [_entry(doc) async for doc in found]

    async def texts(self, entry_ids: list[str]) -> dict[str, str]:
        """The texts of these entries, each read by its id."""
        found: dict[str, str] = {}
        for entry_id in entry_ids:
            doc = await self._entries.find_one({"_id": entry_id}, {"text": 1})
            if doc is not None:
                found[entry_id] = doc.get("text", "")
        return found
