"""The subscriptions a router keeps (adapters/webhooks.py) on MongoDB: callers who find the kept ones stale at the same
time (a batch's events, told together) share one read; a change made here is seen at once, even by a read under way."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, monitoring

from omni_router.adapters.documents import Database, Document
from omni_router.adapters.webhooks import MongoWebhookSubscriptions
from omni_router.domain.integration import Subscription
from omni_runtime.settings import Settings

pytestmark = pytest.mark.integration


class Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "webhook_subscriptions":
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[tuple[Database, Finds]]:
    finds = Finds()
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True, event_listeners=[finds])
    database = client.get_default_database()
    yield database, finds
    await client.drop_database(database.name)
    await client.close()


def subscription(number: int) -> Subscription:
    return Subscription(id=f"sub-{number}", url="https://hooks.example/x", events=("message.new",), secret="s")


async def test_callers_finding_the_kept_subscriptions_stale_together_share_one_read(
    counted: tuple[Database, Finds],
) -> None:
    db, finds = counted
    subscriptions = MongoWebhookSubscriptions(db, ttl_seconds=60)
    await subscriptions.add(subscription(1))
    answers = await asyncio.gather(*(subscriptions.wanting("message.new") for _ in range(20)))
    assert [[s.id for s in answer] for answer in answers] == [["sub-1"]] * 20
    assert finds.count == 1
    assert await subscriptions.wanting("chat.closed") == [] and finds.count == 1  # kept: no read


async def test_a_change_made_while_a_read_is_under_way_is_seen_by_later_callers(
    counted: tuple[Database, Finds],
) -> None:
    db, finds = counted
    subscriptions = MongoWebhookSubscriptions(db, ttl_seconds=60)
    under_way = asyncio.create_task(subscriptions.wanting("message.new"))
    await asyncio.sleep(0)  # the read has begun
    await subscriptions.add(subscription(2))
    assert [s.id for s in await subscriptions.wanting("message.new")] == ["sub-2"]
    await under_way  # whatever it saw, it is not kept
    assert [s.id for s in await subscriptions.wanting("message.new")] == ["sub-2"]
    assert finds.count == 2
