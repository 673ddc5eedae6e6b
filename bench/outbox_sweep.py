"""The reply outbox sweep's query on nx-27017 with many stored messages: sorted by `_id` on the server (before) and by
`publish_due` alone (now). `uv run python -m bench.outbox_sweep [MESSAGES]` (default 300,000; seeding takes a minute
or two) starts an nx-27017 of its own in a temporary directory; BENCHMARKS.md records its figures."""

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel

from tests.support.processes import MongoServer

BATCH = 10_000
RUNS = 5


async def timed(label: str, count: int, query: Callable[[], Any], expected: int) -> None:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        found = await query().to_list()
        times.append((time.perf_counter() - started) * 1000)
        assert len(found) == expected, (label, len(found))
    print(f"{label}: {min(times):.1f}-{max(times):.1f} ms over {RUNS} runs at {count:,} messages", flush=True)


async def main(count: int) -> None:
    mongo = MongoServer(Path(tempfile.mkdtemp(prefix="omni-sweep-")))
    await mongo.start()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.url("sweep"))
    try:
        messages = client.get_default_database().messages
        await messages.create_indexes([IndexModel([("publish_due", ASCENDING)], sparse=True)])
        now = time.time()
        started = time.monotonic()
        for first in range(0, count, BATCH):
            await messages.insert_many(
                [
                    {"_id": f"{n:024x}", "chat_id": f"c{n % 5000}", "direction": "incoming", "text": "hello there"}
                    for n in range(first, min(count, first + BATCH))
                ]
            )
        await messages.insert_many(
            [{"_id": f"f{n:023x}", "direction": "outgoing", "publish_due": now} for n in range(3)]
        )
        print(f"seeded {count:,} messages in {time.monotonic() - started:.0f} s", flush=True)
        due = {"publish_due": {"$lt": now + 100}}
        await timed(
            "before: publish_due range, sorted by _id on the server",
            count,
            lambda: messages.find(due).sort("_id", 1),
            3,
        )
        await timed("now: publish_due range alone (sorted in Python)", count, lambda: messages.find(due), 3)
    finally:
        await client.close()
        await mongo.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300_000))
