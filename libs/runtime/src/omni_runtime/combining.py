"""Batches of several consumers combined into one call of their batch handler (group commit).

The router's partitions each hand in small batches under moderate load (a message or two per partition), and a batch
costs a few database commands however small it is. `CombinedBatches` is the batch handler they share: batches handed
in while it runs wait, and then go to it together in the next call, up to a cap. With a `linger`, a call also waits
until the oldest batch waiting was handed in that long ago (or the cap is reached): under a steady rate the handler
is idle between calls, and without it each call would take the one batch that came first. A batch that waited
longer (behind a running call) goes at once. Each caller gets back its own left positions; a handler that raises
raises to every caller of that call (each consumer then takes its batch one by one, as without combining).

Order: a key's messages come from one consumer, which awaits its batch before it hands in the next, and a batch is
never split, so a key's messages reach the handler in order. Should one key come from two callers in one call (the
handler's contract: it leaves the later messages of a key after one it leaves), the earlier caller's come first.
"""

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from omni_runtime.consumer import BatchHandler

M = TypeVar("M")


@dataclass
class _Handed(Generic[M]):
    """A caller's batch, waiting for its call; `done` answers its own left positions."""

    payloads: Sequence[M]
    done: asyncio.Future[set[int]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    at: float = field(default_factory=lambda: asyncio.get_running_loop().time())


class CombinedBatches(Generic[M]):
    """A batch handler shared by several consumers: their batches to `handler` together, at most `cap` payloads a call
    (a batch larger than the cap goes alone), each call once the oldest batch waiting has waited `linger` seconds or
    the cap is reached. `calls` counts the handler's calls, `combined` the batches they took."""

    def __init__(self, handler: BatchHandler[M], cap: int, linger: float = 0.0) -> None:
        if cap < 1:
            raise ValueError("the cap must be at least 1")
        if linger < 0:
            raise ValueError("the linger cannot be negative")
        self._handler = handler
        self._cap = cap
        self._linger = linger
        self._handed_in = asyncio.Event()
        self._waiting: list[_Handed[M]] = []
        self._runner: asyncio.Task[None] | None = None
        self.calls = 0
        self.combined = 0

    async def __call__(self, payloads: Sequence[M]) -> Collection[int]:
        """Hands in a batch; answers its positions the handler left (or raises what the handler raised)."""
        if not payloads:
            return set()
        handed = _Handed(payloads)
        self._waiting.append(handed)
        self._handed_in.set()
        if self._runner is None or self._runner.done():
            # Started, not run: batches handed in before the loop gets to it (the same tick) go along.
            self._runner = asyncio.create_task(self._run())
        try:
            return await handed.done
        except asyncio.CancelledError:
            # The caller gave up (its consumer stops): not taken yet, it stays out; taken, its result is dropped
            # (unacked, the broker hands its messages out again and the handler dedupes them).
            with contextlib.suppress(ValueError):
                self._waiting.remove(handed)
            raise

    async def _run(self) -> None:
        """Calls the handler while batches wait, each call with what waited (up to the cap), oldest first."""
        while self._waiting:
            taken: list[_Handed[M]] = []
            try:
                await self._linger_for_more()
                if not self._waiting:  # every caller gave up meanwhile
                    return
                taken = self._take()
                await self._call(taken)
            except asyncio.CancelledError:  # the loop shuts down: nobody is left waiting for ever
                for handed in [*taken, *self._waiting]:
                    handed.done.cancel()
                self._waiting.clear()
                raise

    async def _linger_for_more(self) -> None:
        """Until the oldest batch waiting was handed in `linger` ago, or the waiting batches fill the cap."""
        loop = asyncio.get_running_loop()
        while self._waiting and sum(len(h.payloads) for h in self._waiting) < self._cap:
            left = self._waiting[0].at + self._linger - loop.time()
            if left <= 0:
                return
            self._handed_in.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._handed_in.wait()

    def _take(self) -> list[_Handed[M]]:
        taken = [self._waiting.pop(0)]
        size = len(taken[0].payloads)
        while self._waiting and size + len(self._waiting[0].payloads) <= self._cap:
            size += len(self._waiting[0].payloads)
            taken.append(self._waiting.pop(0))
        return taken

    async def _call(self, taken: list[_Handed[M]]) -> None:
        combined = [payload for handed in taken for payload in handed.payloads]
        self.calls += 1
        self.combined += len(taken)
        try:
            left = set(await self._handler(combined))
        except Exception as exc:
            for handed in taken:
                if not handed.done.done():
                    handed.done.set_exception(exc)
                    handed.done.exception()  # retrieved: a caller that gave up leaves no "never retrieved" warning
            return
        start = 0
        for handed in taken:
            end = start + len(handed.payloads)
            if not handed.done.done():
                handed.done.set_result({position - start for position in left if start <= position < end})
            start = end
