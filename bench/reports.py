"""Reports at scale: seed the nx-27017 stand-in (started here on a free port, or MONGODB_URL) with chats and
1,000,000 messages, then time the summary (whole period, one queue, one operator) and the CSV export.

    uv run --frozen python -m bench.reports [--messages 1000000] [--per-chat 10]

Reports read chats only (counts and durations are kept on them as messages go in and out); the messages are
seeded so that the database is the size it would be.
"""

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from omni_router.adapters.mongo_operators import MongoOperators
from omni_router.adapters.mongo_reports import MongoReports
from omni_router.adapters.mongo_settings import MongoChannels, MongoQueues
from omni_router.domain.reports import ReportFilter, period
from omni_router.service_layer.reports import Supervision
from omni_runtime.database import ensure_indexes
from tests.support.infra import free_port

BATCH = 5000
QUEUES, OPERATORS = 5, 40
END = datetime(2026, 12, 1, tzinfo=UTC)
DAYS = 90


def _chat(n: int, per_chat: int, rng: random.Random) -> dict[str, Any]:
    created = END - timedelta(seconds=rng.uniform(0, DAYS * 86400))
    first = rng.uniform(5, 600)
    closed = rng.random() < 0.9
    resolution = first + rng.uniform(60, 7200)
    doc: dict[str, Any] = {
        "_id": f"{int(created.timestamp()):08x}{n:016x}",
        "channel_id": "ch-0",
        "queue_id": f"q-{n % QUEUES}",
        "contact_id": f"k-{n}",
        "contact_name": f"Customer {n}" if n % 97 else '=HYPERLINK("http://x")',
        "status": "closed" if closed else "assigned",
        "operator_id": f"op-{n % OPERATORS}",
        "created_at": created,
        "created_ts": created.timestamp(),
        "messages_in": per_chat // 2,
        "messages_out": per_chat - per_chat // 2,
        "first_response_at": created + timedelta(seconds=first),
        "first_response_seconds": first,
        "offer_version": 3,
    }
    if closed:
        doc |= {
            "closed_at": created + timedelta(seconds=resolution),
            "closed_ts": created.timestamp() + resolution,
            "resolution_seconds": resolution,
        }
        if rng.random() < 0.3:
            doc["rating"] = {"score": rng.randint(1, 5), "comment": "", "created_at": created}
    return doc


def _messages(chat: dict[str, Any], per_chat: int) -> list[dict[str, Any]]:
    return [
        {
            "_id": f"{chat['_id']}-{i}",
            "chat_id": chat["_id"],
            "channel_id": "ch-0",
            "direction": "incoming" if i % 2 == 0 else "outgoing",
            "type": "text",
            "text": f"message {i} of a chat that goes on for a while",
            "status": "received" if i % 2 == 0 else "delivered",
            "created_at": chat["created_at"] + timedelta(seconds=i * 30),
        }
        for i in range(per_chat)
    ]


async def seed(url: str, messages: int, per_chat: int) -> int:
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, tz_aware=True)
    db = client.get_default_database()
    await ensure_indexes(db)
    await db.queues.insert_many([{"_id": f"q-{n}", "name": f"Queue {n}"} for n in range(QUEUES)])
    await db.operators.insert_many([{"_id": f"op-{n}", "name": f"Operator {n}"} for n in range(OPERATORS)])
    await db.channels.insert_one({"_id": "ch-0", "name": "Shop", "provider": "acme", "source": "bot"})
    rng = random.Random(7)
    chats = messages // per_chat
    started = time.perf_counter()
    for first in range(0, chats, BATCH // per_chat):
        batch = [_chat(n, per_chat, rng) for n in range(first, min(chats, first + BATCH // per_chat))]
        await db.chats.insert_many(batch, ordered=False)
        await db.messages.insert_many([m for c in batch for m in _messages(c, per_chat)], ordered=False)
    print(f"seeded {chats:,} chats and {chats * per_chat:,} messages in {time.perf_counter() - started:.0f} s")
    await client.close()
    return chats


async def measure(url: str) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, tz_aware=True)
    db = client.get_default_database()
    reports = Supervision(
        reports=MongoReports(db), channels=MongoChannels(db), queues=MongoQueues(db), operators=MongoOperators(db)
    )
    whole = period((END - timedelta(days=30)).isoformat(), END.isoformat(), END)
    for label, filters in (
        ("summary, 30 days", ReportFilter(whole)),
        ("summary, 30 days, one queue", ReportFilter(whole, queue_id="q-1")),
        ("summary, 30 days, one operator", ReportFilter(whole, operator_id="op-3")),
        ("summary, 1 day", ReportFilter(period("2026-11-20", "2026-11-21", END))),
    ):
        started = time.perf_counter()
        summary = await reports.summary(filters)
        print(
            f"{label}: {time.perf_counter() - started:.2f} s "
            f"(opened {summary.chats_opened:,}, closed {summary.chats_closed:,}, p90 first response "
            f"{summary.first_response.p90 or 0:.0f} s)"
        )
    for label, days in (("chats.csv, 30 days", 30), ("chats.csv, 1 day", 1)):
        started = time.perf_counter()
        size = 0
        rows = 0
        async for chunk in reports.chats_csv(period((END - timedelta(days=days)).isoformat(), END.isoformat(), END)):
            size += len(chunk)
            rows += chunk.count("\r\n")
        print(f"{label}: {time.perf_counter() - started:.2f} s ({rows - 1:,} rows, {size / 1e6:.1f} MB)")
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--per-chat", type=int, default=10)
    args = parser.parse_args()
    url = os.environ.get("MONGODB_URL")
    server = None
    if url is None:
        port = free_port()
        data = tempfile.mkdtemp(prefix="bench-reports-")
        nx = Path(sys.executable).with_name("nx-27017")
        server = subprocess.Popen(
            [str(nx), "--host", "127.0.0.1", "-p", str(port), "--data-dir", data, "--log-file", f"{data}/nx.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        time.sleep(2)
        url = f"mongodb://127.0.0.1:{port}/bench_reports"
    try:
        asyncio.run(seed(url, args.messages, args.per_chat))
        asyncio.run(measure(url))
    finally:
        if server is not None:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
