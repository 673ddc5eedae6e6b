"""Keeping the search index up to date as messages and contacts are written (inbox, replies, notes, profiles)."""

from collections.abc import Mapping, Sequence
from datetime import datetime

from omni_router.domain.model import Contact, Message
from omni_router.domain.search import contact_entry, message_entry
from omni_router.service_layer.ports import SearchIndex


class Indexer:
    """Writes a message's or a contact's entry; writing one again replaces it (safe to repeat)."""

    def __init__(self, index: SearchIndex) -> None:
        self._index = index

    async def message(self, message: Message, contact_id: str) -> None:
        entry = message_entry(message.id, message.chat_id, contact_id, message.text, message.created_at)
        if entry is not None:
            await self._index.put(entry)

    async def contact(
        self, contact_id: str, name: str | None, attributes: Mapping[str, str] | None = None, at: datetime | None = None
    ) -> None:
        await self._index.put(contact_entry(contact_id, name, dict(attributes or {}), at))

    async def contacts(self, contacts: Sequence[Contact]) -> None:
        """`contact` for each (contacts whose entries are mostly stored already: resolved profiles), in one go."""
        if contacts:
            await self._index.put_again(
                [contact_entry(c.id, c.name, dict(c.attributes), c.created_at) for c in contacts]
            )

    async def batch(self, messages: Sequence[tuple[Message, str]], contacts: Sequence[Contact] = ()) -> None:
        """`message` for each (a message and its contact's id) and `contact` for each contact added, in one go."""
        entries = [
            message_entry(message.id, message.chat_id, contact_id, message.text, message.created_at)
            for message, contact_id in messages
        ]
        found = [entry for entry in entries if entry is not None]
        found += [contact_entry(c.id, c.name, {}, c.created_at) for c in contacts]
        if found:
            await self._index.put_many(found)
