"""A consumer in batch mode, on the real broker: after the slow start (one message in flight, then a new
subscription with the full prefetch) batches fill; each key's messages are handled once and in order, whether in a
batch or one by one; what the batch handler leaves and a batch that fails go one by one, where a refusal is parked."""

import asyncio
from collections.abc import Sequence

import pytest

from omni_contracts import ProfileRequested
from omni_runtime.broker import Broker
from omni_runtime.consumer import Batching
from omni_runtime.errors import PermanentError
from omni_runtime.metrics import Metrics
from omni_runtime.parking import list_parked
from omni_runtime.service import configured_consumer
from omni_runtime.settings import Settings
from omni_runtime.topology import PROFILES_REQUESTED
from tests.support.stack import eventually

pytestmark = pytest.mark.integration

KEYS = ("ann", "bob", "cid")
PER_KEY = 15


def request(key: str, number: int, what: str = "") -> ProfileRequested:
    return ProfileRequested(contact_id=key, channel_id="ch-1", provider="acme", external_id=f"{number}{what}")


async def test_batches_fill_keep_each_keys_order_and_fall_back_one_by_one(broker: Broker, settings: Settings) -> None:
    handled: list[tuple[str, str]] = []  # (key, external id), in the order handled
    sizes: list[int] = []
    failed: list[int] = []  # the sizes of batches that raised

    async def one(item: ProfileRequested) -> None:
        if item.external_id.endswith("poison"):
            raise PermanentError("refused")
        handled.append((item.contact_id, item.external_id))

    async def batch(items: Sequence[ProfileRequested]) -> set[int]:
        sizes.append(len(items))
        if any(item.external_id.endswith("explode") for item in items):
            failed.append(len(items))
            raise RuntimeError("the database went away")
        left: set[int] = set()
        for position, item in enumerate(items):
            # Left: the poison, and (as the contract asks) every later item of its key.
            if item.external_id.endswith("poison") or any(items[p].contact_id == item.contact_id for p in left):
                left.add(position)
            else:
                handled.append((item.contact_id, item.external_id))
        return left

    consumer = configured_consumer(
        broker,
        settings,
        Metrics("test"),
        PROFILES_REQUESTED,
        ProfileRequested.model_validate_json,
        one,
        prefetch=4,
        order_key=lambda item: item.contact_id,
        batching=Batching(batch, size=10, wait_seconds=0.05),
    )
    specials = {("bob", 5): "poison", ("cid", 9): "explode"}
    for number in range(PER_KEY):
        for key in KEYS:
            await broker.publish_event(request(key, number, specials.get((key, number), "")))
    await consumer.start()
    try:

        async def done() -> bool:
            return len(handled) == len(KEYS) * PER_KEY - 1

        await eventually(done, timeout=20)
        await asyncio.sleep(0.3)  # nothing more may come
        parked = await list_parked(broker, "profiles.requested")
    finally:
        await consumer.stop()

    for key in KEYS:
        numbers = [int(external.removesuffix("explode")) for k, external in handled if k == key]
        expected = [n for n in range(PER_KEY) if (key, n) != ("bob", 5)]
        assert numbers == expected, key  # each once, in order
    print(sizes, failed)
    assert failed and failed[0] > 1  # a whole batch went one by one, and its others were handled all the same
    assert sizes[0] == 1 and max(sizes) > 4  # the slow start, then more than the prefetch asked for: a new subscription
    assert [p for p in parked if "poison" in str(p)], parked
