"""An update on nx-27017 filtered by an indexed field other than `_id`, against the same update by `_id` and the
find by that field, as the collection grows. `uv run python -m bench.update_filter` starts an nx-27017 of its own in
a temporary directory. Why the router's adapters find documents through an index and then write them by `_id`."""

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from omni_runtime.database import Document
from tests.support.processes import MongoServer

RUNS = 15


async def median_ms(call: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[RUNS // 2]


async def timings(words: Any, key: str) -> tuple[float, float, float]:
    found = await words.find_one({"key": key})
    assert found is not None
    by_key = await median_ms(lambda: words.update_one({"key": key}, {"$set": {"v": 1}}))
    by_id = await median_ms(lambda: words.update_one({"_id": found["_id"]}, {"$set": {"v": 2}}))
    read = await median_ms(lambda: words.find_one({"key": key}))
    return by_key, by_id, read


async def main() -> None:
    server = MongoServer(Path(tempfile.mkdtemp(prefix="omni-update-filter-")))
    await server.start()
    client: AsyncMongoClient[Document] = AsyncMongoClient(server.url("probe"))
    words = client.probe.words
    try:
        await words.create_index("key", unique=True)
        stored = 0
        for size in (1_000, 20_000, 100_000):
            await words.insert_many([{"key": f"word{n:07d} e", "v": 0} for n in range(stored, size)])
            stored = size
            by_key, by_id, read = await timings(words, f"word{size // 2:07d} e")
            print(
                f"{size:>7,} documents: update_one by the indexed key {by_key:.2f} ms | by _id {by_id:.2f} ms | "
                f"find_one by the key {read:.2f} ms (medians of {RUNS})",
                flush=True,
            )
    finally:
        await client.close()
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
