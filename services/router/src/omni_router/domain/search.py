"""Search: the words of message texts and of contacts' names and attributes, as the search index keeps them.

A word is a run of letters and digits, compared case-folded (so "Straße" finds "STRASSE"); a query matches what
holds every one of its words. The index (adapters/search_index.py) is looked up by one word; the others are
checked on the entry itself, which carries its words.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

WORD = re.compile(r"\w+")
MAX_WORDS_PER_ENTRY = 500
MAX_QUERY_WORDS = 8
MAX_WORD_LENGTH = 64

HitKind = Literal["message", "contact"]


def words(*texts: str | None) -> list[str]:
    """The distinct words of `texts`, case-folded, in order of appearance (at most MAX_WORDS_PER_ENTRY)."""
    found: dict[str, None] = {}
    for text in texts:
        for word in WORD.findall((text or "").casefold()):
            if len(word) <= MAX_WORD_LENGTH:
                found[word] = None
            if len(found) >= MAX_WORDS_PER_ENTRY:
                return list(found)
    return list(found)


def query_words(q: str) -> list[str]:
    """The words a query asks for, the rarest-looking (longest) first: that one is looked up, the others checked."""
    return sorted(words(q)[:MAX_QUERY_WORDS], key=lambda word: (-len(word), word))


@dataclass(frozen=True, slots=True)
class SearchEntry:
    """One searchable thing: a message (`id` is the message's) or a contact (`id` is the contact's, `chat_id`
    None: the hit shows one of the contact's chats the searcher may see)."""

    id: str
    kind: HitKind
    contact_id: str
    text: str
    words: tuple[str, ...]
    chat_id: str | None = None
    created_at: datetime | None = None

    def has_all(self, wanted: Iterable[str]) -> bool:
        return set(wanted) <= set(self.words)


def message_entry(
    message_id: str, chat_id: str, contact_id: str, text: str | None, created_at: datetime | None
) -> SearchEntry | None:
    """A message's entry; None if it has no words."""
    found = words(text)
    if not found:
        return None
    return SearchEntry(message_id, "message", contact_id, text or "", tuple(found), chat_id, created_at)


def contact_entry(
    contact_id: str, name: str | None, attributes: dict[str, str] | None, created_at: datetime | None
) -> SearchEntry:
    """A contact's entry: its name and the values of its attributes (email, phone, CRM id, ...)."""
    values = list((attributes or {}).values())
    text = " · ".join([name or "", *values]).strip(" ·")
    return SearchEntry(contact_id, "contact", contact_id, text, tuple(words(name, *values)), None, created_at)
