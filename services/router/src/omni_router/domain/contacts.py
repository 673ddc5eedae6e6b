"""Contacts as operators see and change them: the card, who may see it, edits, and merging two contacts that are one
person (pure rules; the use case is service_layer/contacts.py)."""

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from omni_router.domain.access import may_see
from omni_router.domain.errors import Invalid
from omni_router.domain.model import Channel, Chat, Contact, Operator
from omni_router.domain.views import iso

MAX_ATTRIBUTES = 50
MAX_KEY = 64
MAX_VALUE = 1000


def check_attributes(attributes: Mapping[str, Any]) -> dict[str, str]:
    """A flat object of strings (keys 1-64 characters, values up to 1000, at most 50), else Invalid."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise Invalid("invalid_body", f"attributes: at most {MAX_ATTRIBUTES}")
    for key, value in attributes.items():
        if not 0 < len(key) <= MAX_KEY:
            raise Invalid("invalid_body", f"attributes: a name must be 1 to {MAX_KEY} characters")
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise Invalid("invalid_body", f"attributes.{key}: a string of at most {MAX_VALUE} characters")
    return dict(attributes)


def may_see_contact(chats: Iterable[Chat], operator: Operator) -> bool:
    """An operator may see a contact who may see one of its chats (a supervisor: every contact)."""
    return operator.is_supervisor or any(may_see(chat, operator) for chat in chats)


def may_read_history(chats: Iterable[Chat], operator: Operator) -> bool:
    """An operator who may see one open chat of a contact may read all of its conversations."""
    return operator.is_supervisor or any(chat.is_open and may_see(chat, operator) for chat in chats)


def merged(into: Contact, source: Contact) -> Contact:
    """`into` holding `source`: its identities, the contacts merged into it, and its attributes (where `into` has
    none of that name). The same whether done once or again."""
    identities = tuple(dict.fromkeys((*into.all_identities, *source.all_identities)))
    merged_ids = tuple(i for i in dict.fromkeys((*into.merged_ids, *source.all_ids)) if i != into.id)
    return replace(
        into,
        identities=identities,
        merged_ids=merged_ids,
        attributes={**source.attributes, **into.attributes},
    )


def card(contact: Contact, channels: Mapping[str, Channel]) -> dict[str, Any]:
    """`GET /api/contacts/{id}`: the contact and its identities, each with its channel's provider."""
    return {
        "id": contact.id,
        "name": contact.name,
        "photo_url": contact.photo_url,
        "attributes": dict(contact.attributes),
        "identities": [
            {
                "channel_id": i.channel_id,
                "provider": channels[i.channel_id].provider if i.channel_id in channels else None,
                "external_id": i.external_id,
            }
            for i in contact.all_identities
        ],
        "created_at": iso(contact.created_at),
    }
