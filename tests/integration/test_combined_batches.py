"""Partition consumers in batch mode sharing one combined batch handler (omni_runtime/combining.py), on the real broker
and the router's partition queues (single active consumer): batches of several partitions go into one call, each
consumer acks its own messages, each key is handled once and in order, and a combined call that fails sends every
batch in it one by one, where a refusal is parked."""

import asyncio
from collections.abc import Sequence

import pytest

from omni_contracts import ProfileRequested
from omni_runtime.broker import Broker
from omni_runtime.combining import CombinedBatches
from omni_runtime.consumer import Batching, Consumer
from omni_runtime.errors import PermanentError
from omni_runtime.metrics import Metrics
from omni_runtime.parking import list_parked
from omni_runtime.service import configured_consumer
from omni_runtime.settings import Settings
from tests.support.stack import eventually

pytestmark = pytest.mark.integration

PARTITIONS = 4
KEYS_PER_PARTITION = 3
PER_KEY = 12


def request(key: str, number: int, what: str = "") -> ProfileRequested:
    return ProfileRequested(contact_id=key, channel_id="ch-1", provider="acme", external_id=f"{number}{what}")


async def test_partitions_batches_go_together_each_key_once_and_in_order(broker: Broker, settings: Settings) -> None:
    handled: list[tuple[str, str]] = []
    calls: list[int] = []  # how many payloads each call took
    failed: list[int] = []

    async def one(item: ProfileRequested) -> None:
        if item.external_id.endswith("poison"):
            raise PermanentError("refused")
        handled.append((item.contact_id, item.external_id))

    async def bulk(items: Sequence[ProfileRequested]) -> set[int]:
        calls.append(len(items))
        await asyncio.sleep(0.02)  # a few database commands: other partitions' batches pile up meanwhile
        if any(item.external_id.endswith("explode") for item in items):
            failed.append(len(items))
            raise RuntimeError("the database went away")
        left: set[int] = set()
        for position, item in enumerate(items):
            if item.external_id.endswith("poison") or any(items[p].contact_id == item.contact_id for p in left):
                left.add(position)
            else:
                handled.append((item.contact_id, item.external_id))
        return left

    combined = CombinedBatches(bulk, cap=40)
    partitions = broker.topology.inbox[:PARTITIONS]
    consumers: list[Consumer[ProfileRequested]] = [
        configured_consumer(
            broker,
            settings,
            Metrics("test"),
            partition,
            ProfileRequested.model_validate_json,
            one,
            order_key=lambda item: item.contact_id,
            batching=Batching(combined, size=10, wait_seconds=0.01),
        )
        for partition in partitions
    ]
    keys = {p.name: [f"{p.name}-k{k}" for k in range(KEYS_PER_PARTITION)] for p in partitions}
    specials = {(keys[partitions[1].name][0], 4): "poison", (keys[partitions[2].name][1], 7): "explode"}
    for consumer in consumers:
        await consumer.start()  # declares its partition
        await consumer.stop()
    for number in range(PER_KEY):
        for partition in partitions:
            for key in keys[partition.name]:
                body = request(key, number, specials.get((key, number), "")).model_dump_json().encode()
                await broker.publish("", partition.name, body)
    for consumer in consumers:
        await consumer.start()
    try:

        async def done() -> bool:
            return len(handled) == PARTITIONS * KEYS_PER_PARTITION * PER_KEY - 1

        await eventually(done, timeout=30)
        await asyncio.sleep(0.3)  # nothing more may come
        parked = [m for p in partitions for m in await list_parked(broker, p.name)]
    finally:
        for consumer in consumers:
            await consumer.stop()
    print(calls, failed, combined.calls, combined.combined)

    for key in (k for ks in keys.values() for k in ks):
        numbers = [int(external.removesuffix("explode")) for k, external in handled if k == key]
        assert numbers == [n for n in range(PER_KEY) if specials.get((key, n)) != "poison"], key  # once, in order
    assert combined.combined > combined.calls  # some call took the batches of several partitions
    assert combined.calls == len(calls) and sum(c.batches for c in consumers) == combined.combined
    assert failed and max(calls) > 10  # a combined call failed; calls larger than one partition's batch
    assert [p for p in parked if "poison" in str(p)], parked
