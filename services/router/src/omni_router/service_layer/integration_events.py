"""Outbound webhooks, the router's side: events for the subscribers (`IntegrationEvents.emit`, the one port every
use case reports them through), and the subscriptions an admin manages with their delivery attempts.

For each event, one `webhook.delivery` per subscription that wants it goes on the broker; the dispatcher POSTs it
signed, retries, parks and records each attempt (docs/providers-outbound.md). Exactly once in effect: an event is
emitted either from a chat's outbox (written with the change that causes it: chat.assigned, chat.closed) or at
once by a use case whose cause is redelivered until it succeeds (a customer's message, a reply in the reply
outbox, a receipt), under an id derived from that cause; the dispatcher and receivers dedupe on the id.
"""

from collections.abc import Mapping
from typing import Any

from omni_contracts import WebhookDelivery, WebhookEvent
from omni_router.domain.errors import NotFound
from omni_router.domain.integration import (
    DeliveryAttempt,
    IntegrationEvent,
    Subscription,
    WebhookEventName,
    WebhookSettings,
    integration_event,
)
from omni_router.service_layer.ports import Clock, Destinations, Events, WebhookDeliveries, WebhookSubscriptions

LIST_LIMIT = 1000
DELIVERIES_PAGE_MAX = 1000


class IntegrationEvents:
    def __init__(self, subscriptions: WebhookSubscriptions, events: Events, clock: Clock) -> None:
        self._subscriptions = subscriptions
        self._events = events
        self._clock = clock

    def event(self, kind: WebhookEventName, data: Mapping[str, Any], *, key: str | None = None) -> IntegrationEvent:
        return integration_event(kind, data, at=self._clock.now(), new_id=self._clock.new_id, key=key)

    async def emit(self, kind: WebhookEventName, data: Mapping[str, Any], *, key: str) -> None:
        """Deliver an event to every subscription that wants it. `key` names its cause (a message id, a chat id and
        what happened): call this again when the cause is handled again (a redelivery after a crash) and the
        same event id goes out, which the dispatcher and receivers take once. Raises BrokerUnavailable if the
        broker did not confirm (let the cause be retried)."""
        await self.publish(self.event(kind, data, key=key))

    async def publish(self, event: IntegrationEvent) -> None:
        """One `webhook.delivery` per subscription to the event; BrokerUnavailable if the broker did not confirm."""
        body = WebhookEvent(id=event.event_id, event=event.event, created_at=event.created_at, data=dict(event.data))
        for subscription in await self._subscriptions.wanting(event.event):
            await self._events.publish(WebhookDelivery(subscription_id=subscription.id, webhook=body))


class Webhooks:
    """The admin's subscriptions and what became of their deliveries."""

    def __init__(
        self,
        subscriptions: WebhookSubscriptions,
        deliveries: WebhookDeliveries,
        destinations: Destinations,
        clock: Clock,
    ) -> None:
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._destinations = destinations
        self._clock = clock

    async def subscribe(self, body: WebhookSettings) -> Subscription:
        await self._destinations.check(body.url)
        subscription = Subscription(
            id=self._clock.new_id(),
            url=body.url,
            events=tuple(dict.fromkeys(body.events)),
            secret=body.secret,
            created_at=self._clock.now(),
        )
        await self._subscriptions.add(subscription)
        return subscription

    async def subscriptions(self) -> list[Subscription]:
        return await self._subscriptions.all(LIST_LIMIT)

    async def get(self, subscription_id: str) -> Subscription:
        found = await self._subscriptions.get(subscription_id)
        if found is None:
            raise NotFound("not_found", f"no webhook {subscription_id}")
        return found

    async def delete(self, subscription_id: str) -> None:
        """Its deliveries stop: the dispatcher records what is still queued as failed (`the subscription is
        deleted`) and drops it; its attempts stay listed."""
        if not await self._subscriptions.delete(subscription_id):
            raise NotFound("not_found", f"no webhook {subscription_id}")

    async def deliveries(
        self, subscription_id: str, cursor: str | None, limit: int
    ) -> tuple[list[DeliveryAttempt], str | None]:
        """Every attempt, in the order made, `limit` after `cursor`; the next page's cursor (None: no more). A
        deleted subscription's attempts stay readable."""
        limit = max(1, min(limit, DELIVERIES_PAGE_MAX))
        attempts = await self._deliveries.page(subscription_id, cursor, limit + 1)
        if not attempts and cursor is None:
            await self.get(subscription_id)  # none yet, or no such subscription (404)
        more = len(attempts) > limit
        attempts = attempts[:limit]
        return attempts, (attempts[-1].id if more else None)
