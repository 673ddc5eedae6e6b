"""Batches of several consumers combined into one call of their batch handler (group commit).

The router's partitions each hand in small batches under moderate load (a message or two per partition), and a batch
costs a few database commands however small it is. `CombinedBatches` is the batch handler they share: a batch handed
in while nobody runs the handler goes to it at once (no wait when idle); batches handed in while it runs wait, and
then go to it together in the next call, up to a cap. Each caller gets back its own left positions; a handler that
raises raises to every caller of that call (each consumer then takes its batch one by one, as without combining).

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


class CombinedBatches(Generic[M]):
    """A batch handler shared by several consumers: their batches to `handler` together, at most `cap` payloads a call
    (a batch larger than the cap goes alone). `calls` counts the handler's calls, `combined` the batches they took."""

    def __init__(self, handler: BatchHandler[M], cap: int) -> None:
        if cap < 1:
            raise ValueError("the cap must be at least 1")
        self._handler = handler
        self._cap = cap
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
            taken = self._take()
            try:
                await self._call(taken)
            except asyncio.CancelledError:  # the loop shuts down: nobody is left waiting for ever
                for handed in [*taken, *self._waiting]:
                    handed.done.cancel()
                self._waiting.clear()
                raise

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
