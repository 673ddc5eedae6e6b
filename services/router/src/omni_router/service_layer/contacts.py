"""Contacts (the operator's contact card, issue 13 item 4): the card with the contact's identities on each channel,
edits, every chat of the contact across channels, and the admin's merge of two contacts that are one person.

Visibility is the chats' fence: an operator may see a contact who may see one of its chats, and may read all its
conversations who may see one open chat of it (supervisors: everything); anything else is 404.

A merge is safe to repeat and to interrupt. Its steps, each idempotent: (1) the contact kept takes the other's
identities, merged ids and attributes; (2) the other is marked merged (from here on it is gone: 404, and its sender
finds the one kept); (3) contacts merged into the other before are re-pointed; (4) its chats move. A repeat of the
same merge after a crash between any two steps finds the other already merged into the same contact and does every
step again. Until (4) is done the chats not moved yet are still found: the kept contact's chats are looked up by
every id merged into it.
"""

import hashlib
import json
import logging
from collections.abc import Mapping

from omni_router.domain.access import may_see
from omni_router.domain.contacts import card, may_read_history, may_see_contact, merged
from omni_router.domain.errors import Invalid, NotFound
from omni_router.domain.model import Channel, Chat, Contact, Operator
from omni_router.service_layer.indexing import Indexer
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.ports import Chats, Contacts, Messages, RoutingSettings

log = logging.getLogger(__name__)


def _missing(contact_id: str) -> NotFound:
    return NotFound("contact_not_found", f"no contact {contact_id}")


class ContactCards:
    def __init__(
        self,
        *,
        contacts: Contacts,
        chats: Chats,
        messages: Messages,
        settings: RoutingSettings,
        indexer: Indexer,
        integration: IntegrationEvents,
    ) -> None:
        self._indexer = indexer
        self._integration = integration
        self._messages = messages
        self._contacts = contacts
        self._chats = chats
        self._settings = settings

    async def _live(self, contact_id: str) -> Contact:
        contact = await self._contacts.get(contact_id)
        if contact is None or contact.merged_into is not None:
            raise _missing(contact_id)
        return contact

    async def _chats_of(self, contact: Contact) -> list[Chat]:
        """Every chat of the contact and of those merged into it (moved or not yet), newest first."""
        found = {chat.id: chat for contact_id in contact.all_ids for chat in await self._chats.of_contact(contact_id)}
        return sorted(found.values(), key=lambda chat: chat.id, reverse=True)

    async def visible(self, contact_id: str, operator: Operator) -> Contact:
        """The contact, if the operator may see one of its chats; else NotFound (the same as no such contact)."""
        contact = await self._live(contact_id)
        if not may_see_contact(await self._chats_of(contact), operator):
            raise _missing(contact_id)
        return contact

    async def card(self, contact_id: str, operator: Operator) -> dict[str, object]:
        return await self._card(await self.visible(contact_id, operator))

    async def _card(self, contact: Contact) -> dict[str, object]:
        channels: dict[str, Channel] = {}
        for identity in contact.all_identities:
            channel = await self._settings.channel(identity.channel_id)
            if channel is not None:
                channels[channel.id] = channel
        return card(contact, channels)

    async def edit(
        self, contact_id: str, operator: Operator, name: str | None, attributes: Mapping[str, str] | None
    ) -> dict[str, object]:
        """Change the name and/or replace the attributes (checked before anything is written)."""
        contact = await self.visible(contact_id, operator)
        changed = await self._contacts.edit(contact.id, name, attributes)
        if changed is None:
            raise _missing(contact_id)
        if name is not None:
            for old_id in changed.all_ids:
                await self._chats.rename_contact(old_id, name)
        await self.contact_updated(changed)
        return await self._card(changed)

    async def chats(self, contact_id: str, operator: Operator) -> list[tuple[Chat, int]]:
        """The contact's chats across its channels, newest first, each with its unread count: all of them to an
        operator who may see one open chat of the contact, else those the operator may see (none: NotFound)."""
        contact = await self._live(contact_id)
        chats = await self._chats_of(contact)
        if not may_read_history(chats, operator):
            if not may_see_contact(chats, operator):
                raise _missing(contact_id)
            chats = [chat for chat in chats if may_see(chat, operator)]
        unread = await self._messages.unread_counts([chat.id for chat in chats])
        return [(chat, unread.get(chat.id, 0)) for chat in chats]

    async def merge(self, into_id: str, from_id: str) -> dict[str, object]:
        """`from_id` becomes part of `into_id` (see the module's note for the steps); the kept contact's card."""
        if into_id == from_id:
            raise Invalid("invalid_body", "into and from are the same contact")
        into = await self._live(into_id)
        source = await self._contacts.get(from_id)
        if source is None or source.merged_into not in (None, into.id):
            raise _missing(from_id)
        kept = merged(into, source)
        await self._contacts.absorb(kept)
        await self._contacts.mark_merged(source.id, into.id)
        for earlier in source.merged_ids:
            await self._contacts.mark_merged(earlier, into.id)
        for old_id in source.all_ids:
            for chat in await self._chats.of_contact(old_id):
                await self._chats.move_contact(chat, into.id, kept.name)
        log.info("contacts merged", extra={"into": into.id, "from": source.id})
        await self.contact_updated(kept)
        return await self._card(kept)

    async def contact_updated(self, contact: Contact) -> None:
        """Where a contact's change (an edit, a merge) is told to others: its search entry is written again (name
        and attributes searchable), and the webhooks' subscribers get `contact.updated` with the card, under an id
        of the contact as it now is (the same change told again, as a repeated merge does, goes out once)."""
        await self._indexer.contact(contact.id, contact.name, contact.attributes, contact.created_at)
        view = await self._card(contact)
        version = hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()[:32]
        await self._integration.emit("contact.updated", {"contact": view}, key=f"{contact.id}:{version}")
