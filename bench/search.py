"""The search index's costs on a MongoDB (or the nx-27017 stand-in): writing messages' postings, and reading a word's.

Run from the workspace root against a database of its own (it drops it at the end), e.g. an nx-27017 started with
`.venv/bin/nx-27017 --host 127.0.0.1 -p 27992 --data-dir /tmp/nx-search`:
`uv run python -m bench.search --mongo mongodb://127.0.0.1:27992/search_bench --messages 20000`.
"""

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime

from pymongo import AsyncMongoClient

from omni_router.adapters.search_index import MongoSearchIndex
from omni_router.domain.search import message_entry
from omni_runtime.database import Document, ensure_indexes

BATCH = 200
SCAN_BATCHES = 25  # 5,000 postings in a row (a page reads at most 2,000)


async def run(url: str, messages: int) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(url, tz_aware=True)
    db = client.get_default_database()
    await ensure_indexes(db)
    index = MongoSearchIndex(db)
    vocabulary = [f"word{n}" for n in range(3000)]
    started = time.perf_counter()
    for n in range(messages):
        text = " ".join([*random.sample(vocabulary, 9), "hello", *(["refund"] if n % 1000 == 0 else [])])
        entry = message_entry(f"{n:024x}", f"chat{n % 500}", f"contact{n % 500}", text, datetime.now(UTC))
        assert entry is not None
        await index.put(entry)
    each = (time.perf_counter() - started) * 1000 / messages
    print(f"{messages} messages of 10 words: {each:.2f} ms each to index")
    for word in ("refund", "word7", "hello"):
        started = time.perf_counter()
        found = await index.with_word(word, None, BATCH)
        print(f"{BATCH} postings of {word!r}: {len(found)} in {(time.perf_counter() - started) * 1000:.1f} ms")
    started, before = time.perf_counter(), None
    for _ in range(SCAN_BATCHES):
        batch = await index.with_word("hello", before, BATCH)
        before = batch[-1].id
    print(f"{SCAN_BATCHES * BATCH} postings of 'hello': {(time.perf_counter() - started) * 1000:.0f} ms")
    await client.drop_database(db.name)
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mongo", required=True, help="a MongoDB URL with a database of its own")
    parser.add_argument("--messages", type=int, default=20_000)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.mongo, arguments.messages))


if __name__ == "__main__":
    main()
