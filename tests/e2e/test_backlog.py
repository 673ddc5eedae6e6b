"""Webhooks accepted while the router is down are all stored, exactly once, when it comes back."""

import asyncio

import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.seed import seed_desk
from tests.support.stack import OperatorInbox, Stack, eventually
from tests.support.traffic import Customers

pytestmark = pytest.mark.e2e


async def test_hundred_webhooks_wait_for_the_router(stack: Stack, db: Database, settings: Settings) -> None:
    await stack.start("router")
    desk = await seed_desk(stack)
    await stack.stop("router")
    await stack.start("ingress")

    customers = Customers(stack.url("ingress"), provider=desk.provider, secret=desk.secret)
    try:
        await asyncio.gather(*(customers.write(f"m-{n}", f"cust-{n % 7}", f"#{n}") for n in range(100)))
        # the messenger's repeat of the first ten: same ids, must not double anything
        await asyncio.gather(*(customers.write(f"m-{n}", f"cust-{n % 7}", f"#{n}") for n in range(10)))
    finally:
        await customers.close()
    print(customers.report())
    # Accepted without the router; a request a busy machine left unanswered (0) was retried.
    assert customers.answers[200] == 110 and set(customers.answers) <= {200, 0}
    assert await db.messages.count_documents({}) == 0
    # All 110 accepted webhooks wait in the router's input partitions (the ten repeats too: the router dedupes),
    # and so may an unanswered one that was queued all the same.
    async with OperatorInbox(settings.amqp_url) as inbox:
        assert 110 <= await inbox.router_input_length(settings) <= 110 + customers.answers[0]

    await stack.start("router")

    async def all_routed() -> bool:
        return await db.messages.count_documents({"routed": True}) == 100

    await eventually(all_routed, timeout=60, interval=0.2)
    await asyncio.sleep(0.5)  # give any duplicate a chance to land before counting
    texts = sorted([m["text"] async for m in db.messages.find({})], key=lambda t: int(t[1:]))
    assert texts == [f"#{n}" for n in range(100)]
    assert await db.contacts.count_documents({}) == 7
    assert await db.chats.count_documents({}) == 7
