"""The search index in MongoDB, a word index of our own that works the same on MongoDB and on nx-27017.

`search_words`: one posting per word of a message or a contact, under `key` = "<word> <entry id>" with its own
unique index, so the entries holding a word, newest first and below a cursor, are one range of one indexed field
(`{"key": {"$gt": "<word> ", "$lt": "<word> <cursor>"}}` sorted by `key`), which nx-27017 answers from the index. A
MongoDB text index would not do: nx-27017 has no `$text`, and an index on an array of words finds nothing there
(tests/integration/test_stand_in.py). Each posting carries what the search checks before reading any text: the
entry's kind, chat, contact and all its words. A message's postings are written once (it never changes): one
unordered `insert_many`, a repeat's duplicates ignored. A contact's entry (`search_entries`, its text and words) is
kept so that a rename removes the postings of words it lost, each by its key; it says `posted` once its postings are
all written, so putting it again as it is (a profile that names the contact as its webhook did) is one read. The
texts shown are read at the end, for the page's hits only: a message's from `messages`, a contact's from
`search_entries`.
"""

import asyncio
from collections.abc import Sequence
from uuid import uuid4

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from omni_router.adapters.documents import Database, Document, moment
from omni_router.domain.search import SearchEntry

DUPLICATE_KEY = 11000


def _key(word: str, entry_id: str) -> str:
    return f"{word} {entry_id}"


def _posting(entry: SearchEntry, word: str) -> Document:
    return {
        "key": _key(word, entry.id),
        "entry_id": entry.id,
        "kind": entry.kind,
        "chat_id": entry.chat_id,
        "contact_id": entry.contact_id,
        "words": list(entry.words),
        "created_at": entry.created_at,
    }


def _entry_doc(entry: SearchEntry) -> Document:
    return {"text": entry.text, "words": list(entry.words), "contact_id": entry.contact_id}


def _same(stored: Document, entry: SearchEntry) -> bool:
    """Whether a stored contact entry says what `entry` says (its postings too, then: they are written from it)."""
    return {key: stored.get(key) for key in ("text", "words", "contact_id")} == _entry_doc(entry)


def _entry(doc: Document) -> SearchEntry:
    return SearchEntry(
        id=doc["entry_id"],
        kind=doc.get("kind", "message"),
        contact_id=doc.get("contact_id", ""),
        text="",
        words=tuple(doc.get("words") or ()),
        chat_id=doc.get("chat_id"),
        created_at=moment(doc.get("created_at")),
    )


class MongoSearchIndex:
    def __init__(self, db: Database) -> None:
        self._entries = db.search_entries
        self._words = db.search_words
        self._messages = db.messages

    async def put(self, entry: SearchEntry) -> None:
        """A contact's entry stored as it is and posted is left alone (one read); otherwise it is read and replaced in
        one write, its postings brought up to date, then marked posted (a contact put alone is usually one renamed,
        or one whose profile named it as its webhook did)."""
        if entry.kind != "contact":
            await self._post([entry])
            return
        stored = await self._entries.find_one({"_id": entry.id})
        if stored is not None and stored.get("posted") and _same(stored, entry):
            return
        await self._rewrite(entry)

    async def put_many(self, entries: Sequence[SearchEntry]) -> None:
        """The postings of them all in one write, then the contacts' entries (mostly new ones: a batch's new
        customers) in another, marked posted: an entry stored posted has all its postings."""
        await self._post(entries)
        await self._keep_contacts([entry for entry in entries if entry.kind == "contact"])

    async def put_again(self, entries: Sequence[SearchEntry]) -> None:
        """`put` for each: the contacts' stored entries read in one go, those stored as they are and posted left alone,
        the others rewritten side by side (each as `put` does); messages' entries posted in one write."""
        contacts = {entry.id: entry for entry in entries if entry.kind == "contact"}
        await self._post([entry for entry in entries if entry.kind != "contact"])
        if not contacts:
            return
        stored = {doc["_id"]: doc async for doc in self._entries.find({"_id": {"$in": list(contacts)}})}
        stale = [
            entry
            for entry_id, entry in contacts.items()
            if not ((doc := stored.get(entry_id)) is not None and doc.get("posted") and _same(doc, entry))
        ]
        await asyncio.gather(*(self._rewrite(entry) for entry in stale))

    async def _post(self, entries: Sequence[SearchEntry]) -> None:
        contacts = [entry for entry in entries if entry.kind == "contact"]
        postings = [_posting(entry, word) for entry in entries for word in entry.words]
        if not postings:
            return
        try:
            await self._words.insert_many(postings, ordered=False)
        except BulkWriteError as error:
            if any(e.get("code") != DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
                raise
            # A repeat (or a contact's words kept): what is there stays; a contact's postings are brought up to date.
            for entry in contacts:
                for word in entry.words:
                    if (posting := await self._posting_id(word, entry.id)) is not None:
                        await self._words.update_one({"_id": posting}, {"$set": _posting(entry, word)})

    async def _posting_id(self, word: str, entry_id: str) -> object | None:
        """A posting's `_id`, found by its indexed `key`: postings are written and removed by `_id`, since the nx-27017
        stand-in reads the whole collection for an update or delete filtered by any other field (bench/update_filter.py:
        123 ms at 100,000 documents against 1.4 ms by `_id`; every stored message adds a few postings)."""
        found = await self._words.find_one({"key": _key(word, entry_id)}, {"_id": 1})
        return found["_id"] if found is not None else None

    async def _keep_contacts(self, entries: Sequence[SearchEntry]) -> None:
        """Each contact's entry stored, posted (its postings are written): the new ones in one unordered `insert_many`
        (a new contact had no words to lose), those stored before (refused by their `_id`) rewritten as `put` does."""
        if not entries:
            return
        docs = [{"_id": e.id, **_entry_doc(e), "posted": True} for e in entries]
        refused: set[int] = set()
        try:
            await self._entries.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            refused = {int(e["index"]) for e in errors}
        await asyncio.gather(*(self._rewrite(entries[n]) for n in sorted(refused)))

    async def _rewrite(self, entry: SearchEntry) -> None:
        """The contact's entry replaced (not posted), the postings of the words it lost removed, those of its words
        written, then the entry marked posted, if no other rewrite replaced it meanwhile (its `posting` token)."""
        token = uuid4().hex
        before = await self._entries.find_one_and_update(
            {"_id": entry.id},
            {"$set": {**_entry_doc(entry), "posted": False, "posting": token}},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )
        for word in set((before or {}).get("words") or ()) - set(entry.words):
            if (posting := await self._posting_id(word, entry.id)) is not None:
                await self._words.delete_one({"_id": posting})
        await self._post([entry])
        await self._entries.update_one({"_id": entry.id, "posting": token}, {"$set": {"posted": True}})

    async def with_word(self, word: str, before: str | None, limit: int) -> list[SearchEntry]:
        upper = _key(word, before) if before else f"{word}!"  # "!" sorts just after the separator " "
        found = self._words.find({"key": {"$gt": f"{word} ", "$lt": upper}}).sort("key", -1).limit(limit)
        return [_entry(doc) async for doc in found]

    async def texts(self, entries: list[SearchEntry]) -> dict[str, str]:
        found: dict[str, str] = {}
        for entry in entries:
            source = self._entries if entry.kind == "contact" else self._messages
            doc = await source.find_one({"_id": entry.id}, {"text": 1})
            if doc is not None:
                found[entry.id] = doc.get("text") or ""
        return found
