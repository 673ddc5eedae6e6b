"""The dispatcher's pacer spaces sends per key instead of failing them."""

import asyncio
import time

from omni_dispatcher.pacing import Pacer


async def test_sends_for_one_key_are_spaced_and_other_keys_are_not_held_back() -> None:
    pacer = Pacer()
    stamps: dict[str, list[float]] = {"a": [], "b": []}

    async def send(key: str) -> None:
        await pacer.wait(key, 0.1)
        stamps[key].append(time.monotonic())

    start = time.monotonic()
    await asyncio.gather(*(send("a") for _ in range(4)), send("b"))
    gaps = [later - earlier for earlier, later in zip(stamps["a"], stamps["a"][1:], strict=False)]
    assert all(gap >= 0.09 for gap in gaps), gaps
    assert stamps["b"][0] - start < 0.05


async def test_no_interval_means_no_wait() -> None:
    pacer = Pacer()
    start = time.monotonic()
    for _ in range(100):
        await pacer.wait("k", 0)
    assert time.monotonic() - start < 0.05
