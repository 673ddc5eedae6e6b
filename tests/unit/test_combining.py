"""Combined batches (omni_runtime/combining.py): a batch handed in while the handler is idle goes at once; batches
handed in while it runs go together into the next call, up to the cap; each caller gets its own left positions back,
and a failure raises to every caller of that call."""

import asyncio
from collections.abc import Collection, Sequence

import pytest

from omni_runtime.combining import CombinedBatches


class Handler:
    """Records each call's payloads; leaves those starting with "left"; raises for "explode"; can be held."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def __call__(self, payloads: Sequence[str]) -> set[int]:
        self.calls.append(list(payloads))
        self.started.set()
        await self.release.wait()
        if "explode" in payloads:
            raise RuntimeError("the database went away")
        return {n for n, payload in enumerate(payloads) if payload.startswith("left")}


async def held_first_call(handler: Handler, combined: CombinedBatches[str]) -> asyncio.Task[Collection[int]]:
    """A first batch, held in the handler: what is handed in meanwhile waits for the next call."""
    handler.release.clear()
    first = asyncio.create_task(combined(["a1"]))
    await handler.started.wait()
    return first


async def test_an_idle_handler_takes_a_batch_at_once_alone() -> None:
    handler = Handler()
    combined = CombinedBatches(handler, cap=100)
    task = asyncio.create_task(combined(["a1", "left-a2"]))
    for _ in range(3):  # the caller's task, then the call's: no timer in between
        await asyncio.sleep(0)
    assert handler.calls == [["a1", "left-a2"]]
    assert set(await task) == {1}


async def test_batches_handed_in_while_one_runs_go_together_each_caller_gets_its_own_positions() -> None:
    handler = Handler()
    combined = CombinedBatches(handler, cap=100)
    first = await held_first_call(handler, combined)
    second = asyncio.create_task(combined(["b1", "left-b2", "b3"]))
    third = asyncio.create_task(combined(["left-c1", "c2"]))
    fourth = asyncio.create_task(combined(["d1"]))
    await asyncio.sleep(0.01)
    handler.release.set()
    assert await first == set()
    assert set(await second) == {1}
    assert set(await third) == {0}
    assert set(await fourth) == set()
    assert handler.calls == [["a1"], ["b1", "left-b2", "b3", "left-c1", "c2", "d1"]]  # in the order handed in
    assert (combined.calls, combined.combined) == (2, 4)


async def test_batches_handed_in_the_same_moment_go_in_one_call() -> None:
    handler = Handler()
    combined = CombinedBatches(handler, cap=100)
    answers = await asyncio.gather(combined(["left-a"]), combined(["b"]), combined(["c", "left-c"]))
    assert [set(a) for a in answers] == [{0}, set(), {1}]
    assert handler.calls == [["left-a", "b", "c", "left-c"]]


async def test_a_failure_raises_to_every_caller_of_that_call_and_the_next_call_goes_on() -> None:
    handler = Handler()
    combined = CombinedBatches(handler, cap=100)
    first = await held_first_call(handler, combined)
    second = asyncio.create_task(combined(["b1", "explode"]))
    third = asyncio.create_task(combined(["c1"]))
    await asyncio.sleep(0.01)
    handler.release.set()
    assert await first == set()  # its own call did not fail
    for failed in (second, third):
        with pytest.raises(RuntimeError, match="went away"):
            await failed
    assert set(await combined(["left-d"])) == {0}  # and the handler is used again


async def test_the_cap_limits_a_call_never_splitting_a_batch() -> None:
    handler = Handler()
    combined = CombinedBatches(handler, cap=4)
    first = await held_first_call(handler, combined)
    waiting = [
        asyncio.create_task(combined(batch))
        for batch in (["b1", "b2"], ["c1", "left-c2"], ["d1"], ["e1", "e2", "e3", "e4", "left-e5"], ["f1"])
    ]
    await asyncio.sleep(0.01)
    handler.release.set()
    await first
    answers = [set(await task) for task in waiting]
    assert answers == [set(), {1}, set(), {4}, set()]
    # b+c fill the cap; d alone as e does not fit beside it; e larger than the cap goes alone; then f.
    assert handler.calls[1:] == [
        ["b1", "b2", "c1", "left-c2"],
        ["d1"],
        ["e1", "e2", "e3", "e4", "left-e5"],
        ["f1"],
    ]


async def test_a_caller_that_gives_up_before_its_call_stays_out_of_it() -> None:
    handler = Handler()
    combined = CombinedBatches(handler, cap=100)
    first = await held_first_call(handler, combined)
    gone = asyncio.create_task(combined(["gone"]))
    kept = asyncio.create_task(combined(["kept"]))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0)
    handler.release.set()
    await first
    assert set(await kept) == set()
    assert gone.cancelled()
    assert handler.calls == [["a1"], ["kept"]]


async def test_a_key_keeps_its_order_across_calls_when_each_caller_awaits_its_batch() -> None:
    """Each caller (a partition's consumer) hands in its next batch after the last returned: its keys stay in order."""
    handler = Handler()
    combined = CombinedBatches(handler, cap=8)

    async def partition(name: str) -> None:
        for batch in range(5):
            await combined([f"{name}{batch}-{n}" for n in range(3)])

    await asyncio.gather(*(partition(name) for name in "pqrs"))
    for name in "pqrs":
        seen = [payload for call in handler.calls for payload in call if payload.startswith(name)]
        assert seen == [f"{name}{batch}-{n}" for batch in range(5) for n in range(3)]
    assert len(handler.calls) < 20  # combined: fewer calls than batches


async def test_with_a_linger_a_call_takes_what_came_within_it_of_the_oldest_or_goes_once_the_cap_is_reached() -> None:
    handler = Handler()
    combined = CombinedBatches(handler, cap=5, linger=0.2)
    first = asyncio.create_task(combined(["a1"]))
    await asyncio.sleep(0.05)
    assert handler.calls == []  # idle, yet it lingers for more
    second = asyncio.create_task(combined(["b1", "left-b2"]))
    await asyncio.sleep(0.01)
    assert handler.calls == []
    assert set(await second) == {1} and await first == set()
    assert handler.calls == [["a1", "b1", "left-b2"]]
    # Batches that fill the cap go at once, the linger notwithstanding.
    started = asyncio.get_running_loop().time()
    both = await asyncio.gather(combined(["c1", "c2", "c3"]), combined(["d1", "d2"]))
    assert [set(a) for a in both] == [set(), set()]
    assert handler.calls[-1] == ["c1", "c2", "c3", "d1", "d2"]
    assert asyncio.get_running_loop().time() - started < 0.15


async def test_with_a_linger_batches_that_waited_behind_a_running_call_go_at_once() -> None:
    handler = Handler()
    combined = CombinedBatches(handler, cap=100, linger=0.1)
    handler.release.clear()
    first = asyncio.create_task(combined(["a1"]))
    await handler.started.wait()  # after its linger
    second = asyncio.create_task(combined(["b1"]))
    await asyncio.sleep(0.15)  # longer than the linger, behind the running call
    handler.started.clear()
    handler.release.set()
    await first
    started = asyncio.get_running_loop().time()
    await second
    assert asyncio.get_running_loop().time() - started < 0.05  # no second wait
    assert handler.calls == [["a1"], ["b1"]]


def test_a_linger_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="linger"):
        CombinedBatches(Handler(), cap=5, linger=-1)
