"""Outbound webhooks in MongoDB: subscriptions (`webhook_subscriptions`, as the dispatcher reads them; the ones
wanting an event kept SUBSCRIPTIONS_TTL_SECONDS, since every event reads them) and the dispatcher's delivery
attempts (`webhook_deliveries`); and the destination check of URLs, shared with the dispatcher."""

import asyncio
import time

import httpx

from omni_router.adapters.documents import Database, Document, moment
from omni_router.domain.errors import Invalid
from omni_router.domain.integration import DeliveryAttempt, Subscription
from omni_runtime.destinations import check_destination
from omni_runtime.errors import PermanentError, RetryLater

# How long a router keeps the subscriptions it read: a subscription made or deleted on another router is seen
# within this time; on this one, at once.
SUBSCRIPTIONS_TTL_SECONDS = 2.0


def subscription_from_document(doc: Document) -> Subscription:
    return Subscription(
        id=doc["_id"],
        url=str(doc.get("url") or ""),
        events=tuple(doc.get("events") or ()),
        secret=str(doc.get("secret") or ""),
        created_at=moment(doc.get("created_at")),
        active=doc.get("active") is not False,
    )


class MongoWebhookSubscriptions:
    def __init__(self, db: Database, ttl_seconds: float = SUBSCRIPTIONS_TTL_SECONDS) -> None:
        self._subscriptions = db.webhook_subscriptions
        self._ttl = ttl_seconds
        self._cached: tuple[float, list[Subscription]] | None = None
        # The read under way: callers who find the cache stale meanwhile (a batch's events, told together) share it.
        self._loading: asyncio.Task[list[Subscription]] | None = None
        self._version = 0  # one per change made here: a read begun before a change is not kept after it

    async def add(self, subscription: Subscription) -> None:
        await self._subscriptions.insert_one(
            {
                "_id": subscription.id,
                "url": subscription.url,
                "events": list(subscription.events),
                "secret": subscription.secret,
                "active": subscription.active,
                "created_at": subscription.created_at,
            }
        )
        self._forget()

    async def get(self, subscription_id: str) -> Subscription | None:
        doc = await self._subscriptions.find_one({"_id": subscription_id})
        return subscription_from_document(doc) if doc else None

    async def all(self, limit: int) -> list[Subscription]:
        found = await self._subscriptions.find().sort("_id", 1).limit(limit).to_list()
        return [subscription_from_document(doc) for doc in found]

    async def delete(self, subscription_id: str) -> bool:
        self._forget()
        return bool((await self._subscriptions.delete_one({"_id": subscription_id})).deleted_count)

    async def wanting(self, event: str) -> list[Subscription]:
        if self._cached is not None and time.monotonic() - self._cached[0] <= self._ttl:
            subscriptions = self._cached[1]
        else:
            if self._loading is None:
                self._loading = asyncio.create_task(self._load(self._version))
                self._loading.add_done_callback(_retrieved)
            subscriptions = await asyncio.shield(self._loading)
        return [s for s in subscriptions if s.active and event in s.events]

    async def _load(self, version: int) -> list[Subscription]:
        """All of them, filtered by the callers: few, and one read serves every event kind for the next seconds."""
        read_at = time.monotonic()
        try:
            found = [subscription_from_document(doc) async for doc in self._subscriptions.find()]
        finally:
            if version == self._version:
                self._loading = None
        if version == self._version:
            self._cached = (read_at, found)
        return found

    def _forget(self) -> None:
        self._cached, self._loading = None, None
        self._version += 1


def _retrieved(task: "asyncio.Task[list[Subscription]]") -> None:
    """A read whose callers all gave up leaves no "exception never retrieved" behind."""
    if not task.cancelled():
        task.exception()


def attempt_from_document(doc: Document) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=doc["_id"],
        event_id=str(doc.get("event_id") or ""),
        event=str(doc.get("event") or ""),
        attempt=int(doc.get("attempt") or 0),
        at=moment(doc.get("at")),
        status_code=doc.get("status_code"),
        outcome=str(doc.get("outcome") or ""),
        error=doc.get("error"),
    )


class MongoWebhookDeliveries:
    def __init__(self, db: Database) -> None:
        self._deliveries = db.webhook_deliveries

    async def page(self, subscription_id: str, after: str | None, limit: int) -> list[DeliveryAttempt]:
        query: Document = {"subscription_id": subscription_id}
        if after:
            query["_id"] = {"$gt": after}
        found = await self._deliveries.find(query).sort("_id", 1).limit(limit).to_list()
        return [attempt_from_document(doc) for doc in found]


class DestinationCheck:
    """The dispatcher's check of the URLs it calls (omni_runtime.destinations), made when a subscription is made."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private

    async def check(self, url: str) -> None:
        try:
            await check_destination(httpx.URL(url), self._allow_private, verb="call", host_verb="call")
        except (PermanentError, RetryLater, httpx.InvalidURL) as refused:
            raise Invalid("invalid_url", str(refused)) from None
