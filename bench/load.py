"""The benchmark's load generator, in a process of its own so that its HTTP client does not share an event loop
(or a core's worth of Python) with the services or with the benchmark's own clock-keeping.

`python -m bench.load` reads one job as JSON on stdin and prints its results as JSON on stdout. Jobs:
`publish` (raw aio-pika confirmed publishes), `webhooks` (a closed loop at a fixed concurrency),
`stream` (an open loop at a fixed rate, noting when each webhook was sent) and `inserts` (the database
server's raw insert rate).
"""

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import aio_pika
import httpx
from pymongo import AsyncMongoClient

from omni_contracts import MessageReceived, UnifiedMessage
from omni_runtime.database import Document
from omni_runtime.topology import EVENTS_EXCHANGE, Topology
from tests.support.seed import customer_message
from tests.support.stack import signed

Job = dict[str, Any]


def webhook(job: Job, index: int) -> tuple[bytes, dict[str, str]]:
    """Webhook `index` of a job: message `<prefix>-<index>`, from its own customer unless `senders` cycles them."""
    prefix: str = job["prefix"]
    senders: int = job.get("senders", 0)
    sender = f"{prefix}-cust-{index % senders if senders else index}"
    return signed(customer_message(f"{prefix}-{index}", text=f"{prefix} {index}", sender=sender), job["secret"])


def received_event(job: Job, index: int) -> MessageReceived:
    """The event ingress publishes for webhook `index` (the same body the raw publishes carry)."""
    prefix: str = job["prefix"]
    return MessageReceived(
        message=UnifiedMessage(
            provider=job["provider"],
            channel_id=job["channel_id"],
            provider_message_id=f"{prefix}-{index}",
            sender=f"{prefix}-cust-{index}",
            sender_name="Ann Customer",
            recipient="bot-1",
            sent_at=datetime.now(UTC),
            type="text",
            text=f"{prefix} {index}",
        )
    )


async def closed_loop(count: int, concurrency: int, work: Callable[[int, int], Awaitable[None]]) -> float:
    """work(worker, index) for every index on `concurrency` workers; answers the seconds it took."""
    indexes = iter(range(count))

    async def worker(number: int) -> None:
        for index in indexes:
            await work(number, index)

    started = time.perf_counter()
    await asyncio.gather(*(worker(number) for number in range(concurrency)))
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def clients(count: int, base_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One single-connection client per worker: httpcore rescans its whole pool on every request, which with one
    shared pool of 64 connections costs the load generator more than ingress costs."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30, trust_env=False)
            )
            for _ in range(count)
        ]


async def publish(job: Job) -> Job:
    """Persistent, mandatory, confirmed publishes of the events ingress would publish, to the same queues."""
    topology = Topology(partitions=job["partitions"])
    bodies = [received_event(job, index) for index in range(job["warm"] + job["count"])]
    connection = await aio_pika.connect(job["amqp_url"])
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)

        async def one(worker: int, index: int, offset: int = 0) -> None:
            event = bodies[offset + index]
            message = aio_pika.Message(
                event.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=uuid4().hex,
            )
            await exchange.publish(message, topology.routing_key(event), mandatory=True)

        await closed_loop(job["warm"], job["concurrency"], one)
        cpu = time.process_time()
        seconds = await closed_loop(job["count"], job["concurrency"], lambda w, i: one(w, i, job["warm"]))
        cpu = time.process_time() - cpu
    finally:
        await connection.close()
    size = len(bodies[0].model_dump_json())
    return {"published": job["count"], "seconds": seconds, "rate": job["count"] / seconds, "cpu": cpu, "bytes": size}


async def webhooks(job: Job) -> Job:
    """A closed loop: `concurrency` workers each post the next webhook as soon as theirs was answered."""
    bodies = [webhook(job, index) for index in range(job["warm"] + job["count"])]
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    path = f"/webhooks/{job['provider']}/receive"
    async with clients(job["concurrency"], job["url"]) as pool:

        async def one(worker: int, index: int, offset: int = 0, record: bool = True) -> None:
            raw, headers = bodies[offset + index]
            started = time.perf_counter()
            answer = await pool[worker].post(path, content=raw, headers=headers)
            if record:
                latencies.append(time.perf_counter() - started)
                statuses[answer.status_code] += 1

        await closed_loop(job["warm"], job["concurrency"], lambda w, i: one(w, i, record=False))
        cpu = time.process_time()
        seconds = await closed_loop(job["count"], job["concurrency"], lambda w, i: one(w, i, job["warm"]))
        cpu = time.process_time() - cpu
    return {
        "sent": job["count"],
        "statuses": {str(k): v for k, v in statuses.items()},
        "seconds": seconds,
        "rate": statuses[200] / seconds,
        "cpu": cpu,
        "latencies": latencies,
        "bytes": len(bodies[0][0]),
    }


async def stream(job: Job) -> Job:
    """An open loop: webhook `first` + i is posted at i / rate seconds whatever became of the earlier ones."""
    rate: float = job["rate"]
    count: int = job["count"]
    first: int = job.get("first", 0)
    sent: dict[str, float] = {}  # text -> wall clock when its POST began
    answered: list[float] = []
    statuses: Counter[int] = Counter()
    late: list[float] = []
    free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
    path = f"/webhooks/{job['provider']}/receive"
    async with clients(job["connections"], job["url"]) as pool:
        for client in pool:
            free.put_nowait(client)

        async def one(index: int) -> None:
            raw, headers = webhook(job, first + index)
            # Noted before waiting for a free connection: a wait for one is part of what the sender sees.
            sent[f"{job['prefix']} {first + index}"] = time.time()
            started = time.perf_counter()
            client = await free.get()
            try:
                try:
                    status = (await client.post(path, content=raw, headers=headers)).status_code
                except httpx.HTTPError:
                    status = 0
                answered.append(time.perf_counter() - started)
                statuses[status] += 1
            finally:
                free.put_nowait(client)

        tasks: list[asyncio.Task[None]] = []
        cpu = time.process_time()
        start = time.perf_counter()
        for index in range(count):
            due = start + index / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            late.append(max(0.0, time.perf_counter() - due))
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return {
        "sent": sent,
        "answered": answered,
        "statuses": {str(k): v for k, v in statuses.items()},
        "late": late,
        "seconds": seconds,
        "cpu": cpu,
    }


async def inserts(job: Job) -> Job:
    """insert_one of message-sized documents at a fixed concurrency, then insert_many in batches of 1,000."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(job["mongodb_url"])
    try:
        collection = client.get_default_database()["bench_inserts"]
        await collection.drop()
        text = "x" * job["text_bytes"]

        async def one(worker: int, index: int) -> None:
            await collection.insert_one({"worker": worker, "index": index, "text": text, "at": datetime.now(UTC)})

        seconds = await closed_loop(job["count"], job["concurrency"], one)
        batches = max(1, job["count"] // 1000)
        started = time.perf_counter()
        for batch in range(batches):
            await collection.insert_many([{"batch": batch, "index": i, "text": text} for i in range(1000)])
        many = time.perf_counter() - started
        await collection.drop()
    finally:
        await client.close()
    return {"insert_one_rate": job["count"] / seconds, "insert_many_docs_rate": batches * 1000 / many}


JOBS: dict[str, Callable[[Job], Coroutine[Any, Any, Job]]] = {
    "publish": publish,
    "webhooks": webhooks,
    "stream": stream,
    "inserts": inserts,
}


def main() -> None:
    job: Job = json.load(sys.stdin)
    result = asyncio.run(JOBS[job["kind"]](job))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
