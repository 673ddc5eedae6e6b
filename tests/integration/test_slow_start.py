"""A consumer without batches, on the real broker: its slow start (one message in flight until a fresh one was
settled) ends with the full prefetch, although a quorum queue applies a changed QoS only to later subscriptions: the
consumer subscribes again between messages. Each message is handled once; with an order key each key in order."""

import asyncio
from collections.abc import Callable

import pytest

from omni_contracts import ProfileRequested
from omni_runtime.broker import Broker
from omni_runtime.metrics import Metrics
from omni_runtime.service import configured_consumer
from omni_runtime.settings import Settings
from omni_runtime.topology import PROFILES_REQUESTED
from tests.support.stack import eventually

pytestmark = pytest.mark.integration

KEYS = ("ann", "bob", "cid", "dan", "eve", "fay")
PER_KEY = 8
PREFETCH = 8


def by_contact(item: ProfileRequested) -> str:
    return item.contact_id


@pytest.mark.parametrize("order_key", [None, by_contact], ids=["side-by-side", "ordered"])
async def test_after_the_slow_start_more_than_one_message_is_in_flight(
    broker: Broker, settings: Settings, order_key: Callable[[ProfileRequested], str] | None
) -> None:
    handled: list[tuple[str, int]] = []
    in_flight: list[int] = []  # how many handlers ran, as each began
    running = 0

    async def handle(item: ProfileRequested) -> None:
        nonlocal running
        running += 1
        in_flight.append(running)
        try:
            await asyncio.sleep(0.05)  # long enough for the broker to hand out more, were it allowed to
            handled.append((item.contact_id, int(item.external_id)))
        finally:
            running -= 1

    for number in range(PER_KEY):
        for key in KEYS:
            await broker.publish_event(
                ProfileRequested(contact_id=key, channel_id="ch-1", provider="acme", external_id=str(number))
            )
    consumer = configured_consumer(
        broker,
        settings,
        Metrics("test"),
        PROFILES_REQUESTED,
        ProfileRequested.model_validate_json,
        handle,
        prefetch=PREFETCH,
        order_key=order_key,
    )
    await consumer.start()
    try:

        async def done() -> bool:
            return len(handled) >= len(KEYS) * PER_KEY

        await eventually(done, timeout=30)
        await asyncio.sleep(0.3)  # nothing more may come
    finally:
        await consumer.stop()
    print(in_flight)

    assert in_flight[0] == 1  # the slow start
    assert 1 < max(in_flight) <= PREFETCH  # then the full prefetch: a new subscription
    assert sorted(handled) == sorted((key, n) for key in KEYS for n in range(PER_KEY))  # each once
    if order_key is not None:
        for key in KEYS:
            assert [n for k, n in handled if k == key] == list(range(PER_KEY)), key
