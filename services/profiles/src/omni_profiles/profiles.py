"""Resolving one sender's profile (the reference's IProfileDataProvider) and reporting it to the router.

A provider adapter that can look senders up in its messenger adds a `fetch_profile` method (the
ProfileSource hook); every other provider, third-party ones included, is answered from the webhook:
the sender name it carried, else the reference's fallback name.
"""

import logging

import httpx

from omni_contracts import ProfileRequested, ProfileResolved
from omni_providers import (
    Channel,
    ProfileSource,
    ProviderRegistry,
    SenderProfile,
    UnknownProvider,
    fallback_contact_name,
)
from omni_runtime.broker import Broker
from omni_runtime.database import Database
from omni_runtime.errors import PermanentError

log = logging.getLogger(__name__)


async def resolve_profile(
    event: ProfileRequested, db: Database, broker: Broker, registry: ProviderRegistry, http: httpx.AsyncClient
) -> None:
    """Safe to repeat: the router applies the same ProfileResolved again and nothing changes."""
    channel = await _channel(db, event.channel_id)
    if channel is None:
        raise PermanentError(f"channel {event.channel_id} does not exist")
    profile = await _from_messenger(event, channel, registry, http)
    await broker.publish_event(
        ProfileResolved(
            contact_id=event.contact_id,
            name=(profile.name if profile else None) or webhook_name(event, channel),
            photo_url=profile.photo_url if profile else None,
        )
    )


async def give_up(event: ProfileRequested | None, cause: str, db: Database, broker: Broker) -> None:
    """Called before a request is parked: the contact keeps the webhook's name and stops waiting for a profile."""
    if event is None:
        return
    channel = await _channel(db, event.channel_id)
    if channel is None:
        return  # nothing to name the contact after; the parked request says why
    log.warning("profile not resolved, using the webhook's name", extra={"contact_id": event.contact_id})
    await broker.publish_event(ProfileResolved(contact_id=event.contact_id, name=webhook_name(event, channel)))


def webhook_name(event: ProfileRequested, channel: Channel) -> str:
    return event.sender_name or fallback_contact_name(channel, event.external_id)


async def _from_messenger(
    event: ProfileRequested, channel: Channel, registry: ProviderRegistry, http: httpx.AsyncClient
) -> SenderProfile | None:
    try:
        provider = registry.get(channel.provider)
    except UnknownProvider:
        return None  # a built-in messenger whose adapter is not in this build: the webhook is all there is
    if not isinstance(provider, ProfileSource):
        return None
    try:
        return await provider.fetch_profile(http, channel, event.external_id)
    except PermanentError as exc:
        # The reference names the contact from what it has when the profile lookup fails.
        log.warning("profile lookup refused", extra={"contact_id": event.contact_id, "cause": str(exc)})
        return None


async def _channel(db: Database, channel_id: str) -> Channel | None:
    doc = await db.channels.find_one({"_id": channel_id})
    return Channel.from_document(doc) if doc else None
