"""Resolving one sender's profile (the reference's IProfileDataProvider) and reporting it to the router.

A provider adapter that can look senders up in its messenger adds a `fetch_profile` method (the
ProfileSource hook); every other provider, third-party ones included, is answered from the webhook:
the sender name it carried, else the reference's fallback name.
"""

import logging
import time
from collections.abc import Awaitable, Callable

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

# How long a channel read is used before it is read again: a stream of new customers asks for a profile each, all on a
# few channels, and an admin's change (a rotated token) is seen this much later at most, as in the router's cache.
CHANNEL_TTL_SECONDS = 2.0


class KeptChannels:
    """Channels as read at most `ttl` seconds ago (by `read`); one that does not exist is read again each time."""

    def __init__(
        self,
        read: Callable[[str], Awaitable[Channel | None]],
        ttl: float = CHANNEL_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._kept: dict[str, tuple[float, Channel]] = {}

    async def get(self, channel_id: str) -> Channel | None:
        now = self._clock()
        kept = self._kept.get(channel_id)
        if kept is not None and now - kept[0] < self._ttl:
            return kept[1]
        channel = await self._read(channel_id)
        if channel is None:
            self._kept.pop(channel_id, None)
        else:
            self._kept[channel_id] = (now, channel)
        return channel

    @classmethod
    def of(cls, db: Database) -> "KeptChannels":
        async def read(channel_id: str) -> Channel | None:
            doc = await db.channels.find_one({"_id": channel_id})
            return Channel.from_document(doc) if doc else None

        return cls(read)


async def resolve_profile(
    event: ProfileRequested,
    channels: KeptChannels,
    broker: Broker,
    registry: ProviderRegistry,
    http: httpx.AsyncClient,
) -> None:
    """Safe to repeat: the router applies the same ProfileResolved again and nothing changes."""
    channel = await channels.get(event.channel_id)
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


async def give_up(event: ProfileRequested | None, cause: str, channels: KeptChannels, broker: Broker) -> None:
    """Called before a request is parked: the contact keeps the webhook's name and stops waiting for a profile."""
    if event is None:
        return
    channel = await channels.get(event.channel_id)
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
