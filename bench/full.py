"""The benchmark of the issue's targets: the five services as processes, the load generator in a process of its
own, and the machine's own limits (raw confirmed publishes, raw database inserts) measured in the same run.

Run from the workspace root: `uv run python -m bench.full [--json PATH]` (`--help` for the phases' sizes; the
defaults take about half an hour, `--soak 10000 --history 100000` about ten minutes). It uses the local
RabbitMQ in a vhost of its own and an nx-27017 of its own (its data in a temporary directory), prints a table,
and writes JSON. With `--py-spy PATH` it also profiles the router, ingress and the database server while the
highest rate runs and prints where their time goes. BENCHMARKS.md records a run and reads it.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage
from pymongo import AsyncMongoClient

from bench.quick import Phase, bench_vhost, inbox_depth, percentiles_ms, table
from omni_runtime.database import Document
from omni_runtime.ids import new_id
from omni_runtime.settings import Settings
from omni_runtime.topology import operator_routing_key
from omni_runtime.web import HttpServer
from omni_simulator.app import create_app as simulator_app
from omni_simulator.state import RecordedRequest, SimulatorState
from tests.support.infra import Infra, free_port, start_infra
from tests.support.processes import MongoServer, Processes
from tests.support.stack import ADMIN_TOKEN
from tests.support.traffic import PROVIDER, SECRET, Desk, seed_desk

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("ingress", "router", "dispatcher", "profiles", "attachments")
STRAGGLER_SECONDS = 30.0  # a phase waits this long without a new notification before giving up on the rest
LOAD_TIMEOUT_SECONDS = 3600.0
BACKLOG_LIMIT_SECONDS = 900.0
SEED_BATCH = 1000
MESSAGES_PER_SEEDED_CHAT = 20


@dataclass(frozen=True)
class Options:
    concurrency: int
    messages: int
    rates: tuple[float, ...]
    seconds: float
    followup_rate: float
    replies: int
    reply_rate: float
    small_history: int
    history: int
    history_rate: float
    seed_seconds: float
    soak: int
    soak_rate: float
    py_spy: str | None
    profile_seconds: float
    json_path: Path | None


class Arrivals:
    """When each customer message's notification reached the operator's queue (wall clock: the load generator,
    another process, notes its send times on the same clock), and when the router stored the message."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.stored_at: dict[str, float] = {}
        self.events: Counter[str] = Counter()
        self.repeats = 0

    def reset(self) -> None:
        self.at.clear()
        self.stored_at.clear()
        self.events.clear()
        self.repeats = 0

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        now = time.time()
        note = json.loads(message.body)
        self.events[str(note.get("event"))] += 1
        carried = (note.get("data") or {}).get("message") or {}
        text = carried.get("text")
        if not isinstance(text, str):
            return
        if text in self.at:
            self.repeats += 1
        self.at.setdefault(text, now)
        if isinstance(carried.get("created_at"), str):
            self.stored_at.setdefault(text, datetime.fromisoformat(carried["created_at"]).timestamp())


class ReplyClock(SimulatorState):
    """The simulator's state, also noting when each reply text first arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def record(self, recorded: RecordedRequest) -> RecordedRequest:
        body = recorded.body
        if isinstance(body, dict) and isinstance(body.get("text"), str):
            self.arrived.setdefault(body["text"], time.time())
        return super().record(recorded)


@dataclass
class Bench:
    """What the phases share: the settings, the processes, the desk and the notification clock."""

    options: Options
    settings: Settings
    processes: Processes
    mongo: MongoServer
    desk: Desk
    arrivals: Arrivals
    replies_clock: ReplyClock
    simulator_url: str
    infra: Infra
    vhost: str

    @property
    def ingress_url(self) -> str:
        return self.processes["ingress"].url

    def pids(self) -> dict[str, int]:
        """Every process the messages pass through, by name."""
        found = {name: process.pid for name, process in self.processes.services.items()}
        found["nx27017"] = self.mongo.pid
        if (rabbit := broker_pid()) is not None:
            found["rabbitmq"] = rabbit
        return found

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids().items()}

    def job(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"kind": kind, "provider": PROVIDER, "secret": SECRET, "url": self.ingress_url, **fields}


async def load(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in the load generator process (bench/load.py) and answer its results."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(json.dumps(job).encode()), LOAD_TIMEOUT_SECONDS)
    if process.returncode != 0:
        raise RuntimeError(f"load job {job['kind']} failed ({process.returncode}):\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    """The local RabbitMQ's Erlang VM, to count its CPU with ours."""
    found = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True, check=False).stdout.split()
    return int(found[0]) if found else None


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def settle(done: Callable[[], bool], timeout: float) -> None:
    """Wait until `done()` holds or `timeout` passes (arrivals are timed where they land: polling costs nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        await asyncio.sleep(0.05)


async def publish_vs_intake(bench: Bench) -> Phase:
    """(1) raw confirmed publishes of ingress's own events into the router's partitions, then ingress taking
    webhooks at the same concurrency, with the router stopped so that nothing drains the queues meanwhile."""
    options, settings = bench.options, bench.settings
    phase = Phase("intake", f"1 intake at concurrency {options.concurrency} (router stopped)")
    await bench.processes["router"].stop()
    warm = min(500, options.messages)
    raw = await load(
        bench.job(
            "publish",
            amqp_url=settings.amqp_url,
            partitions=settings.router_partitions,
            channel_id=bench.desk.channel_id,
            prefix="raw",
            warm=warm,
            count=options.messages,
            concurrency=options.concurrency,
        )
    )
    await inbox_depth(settings, purge=True)
    async with profiling(bench, "intake", ("ingress",)):
        intake = await load(
            bench.job("webhooks", prefix="intake", warm=warm, count=options.messages, concurrency=options.concurrency)
        )
    queued = await inbox_depth(settings, purge=True)
    await bench.processes["router"].start()
    accepted = intake["statuses"].get("200", 0)
    if queued != warm + accepted:
        phase.notes.append(f"the partitions held {queued}, expected {warm + accepted}")
    if set(intake["statuses"]) != {"200"}:
        phase.notes.append(f"webhook answers: {intake['statuses']}")
    phase.add("event_bytes", raw["bytes"], "B")
    phase.add("raw_publish_rate", raw["rate"], "/s")
    phase.add("raw_loadgen_cpu", raw["cpu"] / raw["seconds"], "cores")
    phase.add("webhook_bytes", intake["bytes"], "B")
    phase.add("ingress_rate", intake["rate"], "/s")
    phase.add("ratio_to_raw", intake["rate"] / raw["rate"])
    phase.add("ingress_loadgen_cpu", intake["cpu"] / intake["seconds"], "cores")
    phase.add_latencies("webhook_post", intake["latencies"])
    return phase


async def raw_inserts(bench: Bench) -> Phase:
    """(2) the database server's own insert rate, from the load generator process, on a scratch collection."""
    phase = Phase("inserts", "2 raw nx-27017 inserts")
    result = await load(
        bench.job("inserts", mongodb_url=bench.settings.mongodb_url, count=4000, concurrency=16, text_bytes=400)
    )
    phase.add("insert_one_c16_rate", result["insert_one_rate"], "/s")
    phase.add("insert_many_docs_rate", result["insert_many_docs_rate"], "/s")
    return phase


async def stream(
    bench: Bench, rate: float, count: int, prefix: str, title: str, senders: int = 0, first: int = 0
) -> Phase:
    """Webhooks at a fixed offered rate to their notification on the operator's queue: with `senders` 0 each is
    a new customer's first message (`chat.offered`), otherwise `senders` customers take turns (after their
    first message, `message.new`; `first` skips that many of the prefix's webhooks, e.g. the customers' first
    messages streamed before). Latency from the POST's start to the notification's arrival; the phase
    lasts until every notification arrived (a backlog drains) or none came for STRAGGLER_SECONDS."""
    phase = Phase(prefix, title)
    bench.arrivals.reset()
    cpu_before, started = bench.cpu(), time.monotonic()
    job = bench.job("stream", prefix=prefix, rate=rate, count=count, connections=256, senders=senders, first=first)
    result = await load(job)
    sent: dict[str, float] = result["sent"]
    await drained(bench.arrivals, set(sent))
    cpu_after, wall = bench.cpu(), time.monotonic() - started
    arrivals = bench.arrivals
    delays = [arrivals.at[text] - at for text, at in sent.items() if text in arrivals.at]
    stored = {text: arrivals.stored_at[text] - at for text, at in sent.items() if text in arrivals.stored_at}
    routed = [arrivals.at[text] - sent[text] - until for text, until in stored.items() if text in arrivals.at]
    first = min(sent.values())
    last_arrival = max((arrivals.at[t] for t in sent if t in arrivals.at), default=first)
    missing = len(sent) - len(delays)
    if missing:
        phase.notes.append(f"{missing} of {len(sent)} got no notification ({STRAGGLER_SECONDS:.0f} s without any)")
    if set(result["statuses"]) != {"200"}:
        phase.notes.append(f"webhook answers: {result['statuses']}")
    if arrivals.repeats:
        phase.notes.append(f"{arrivals.repeats} notified more than once")
    phase.notes.append(f"notifications: {dict(arrivals.events)}")
    phase.add("offered_rate", count / result["seconds"], "/s")
    phase.add("notified", len(delays))
    phase.add("throughput", len(delays) / max(last_arrival - first, 1e-9), "/s")
    phase.add_latencies("notify", delays)
    phase.add_latencies("webhook_post", result["answered"])
    phase.add_latencies("until_stored", list(stored.values()))
    phase.add_latencies("stored_to_notified", routed)
    phase.add("send_late_p99", percentiles_ms(result["late"]).get("p99", 0.0), "ms")
    phase.add("cpu_loadgen", result["cpu"] / result["seconds"], "cores")
    for name, used in cpu_after.items():
        phase.add(f"cpu_{name}", (used - cpu_before.get(name, used)) / wall, "cores")
    phase.add("load_average_1m", os.getloadavg()[0])
    return phase


async def drained(arrivals: Arrivals, texts: set[str]) -> None:
    """Until every text was notified, or none arrived for STRAGGLER_SECONDS."""
    seen, quiet_since = 0, time.monotonic()
    while not texts <= arrivals.at.keys() and time.monotonic() - quiet_since < STRAGGLER_SECONDS:
        await asyncio.sleep(0.1)
        if len(arrivals.at) != seen:
            seen, quiet_since = len(arrivals.at), time.monotonic()


async def rates(bench: Bench) -> list[Phase]:
    """(3) end to end at each offered rate; the highest one is profiled when py-spy is given."""
    phases = []
    options = bench.options
    for rate in options.rates:
        highest = rate == max(options.rates)
        async with profiling(bench, f"e2e{rate:g}", ("router", "nx27017", "ingress"), enabled=highest):
            phases.append(
                await stream(
                    bench, rate, round(rate * options.seconds), f"e2e{rate:g}", f"3 webhook -> offer {rate:g}/s"
                )
            )
        phases[-1].add("then_drained_in", await quiet(bench), "s")
    rate = options.followup_rate
    phases.append(
        await stream(
            bench, rate, round(rate * options.seconds), "followups", f"3b follow-ups -> message.new {rate:g}/s", 100
        )
    )
    await quiet(bench)
    return phases


async def quiet(bench: Bench, seconds: float = 2.0, limit: float = BACKLOG_LIMIT_SECONDS) -> float:
    """Wait until the broker holds no message for any consumer (what the last phase left: profile requests,
    updates, a backlog beyond the notifications), then until the router handled none for `seconds` (the broker's
    queue figures lag by up to its statistics interval, 5 s: a backlog queued just before may not show yet);
    answers how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await asyncio.to_thread(backlog, bench) == 0:
            break
        await asyncio.sleep(0.5)
    handled = None
    while time.monotonic() - started < limit:
        now = await router_handled(bench)
        if now == handled:
            break
        handled = now
        await asyncio.sleep(seconds)
    return time.monotonic() - started


ROUTER_HANDLED = re.compile(r"^omni_consumed_messages_total\{[^}]*\} (\S+)$", re.M)


async def router_handled(bench: Bench) -> float:
    """Every message the router's consumers have settled so far, all queues and outcomes (its `/metrics`)."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        text = (await client.get(f"{bench.processes['router'].url}/metrics")).text
    return sum(float(value) for value in ROUTER_HANDLED.findall(text))


def backlog(bench: Bench) -> int:
    """Messages ready or unacknowledged in the consumer queues and their wait queues (management API)."""
    with bench.infra.management() as client:
        queues = client.get(f"/api/queues/{quote(bench.vhost, safe='')}", params={"columns": "name,messages"})
    return sum(
        int(q.get("messages") or 0)
        for q in queues.json()
        if not q["name"].startswith(("operator.", "bench")) and not q["name"].endswith(".parked")
    )


async def replies(bench: Bench) -> Phase:
    """(4) operator replies posted at a fixed rate, to the simulator receiving the signed delivery."""
    options = bench.options
    phase = Phase("reply", f"4 reply -> messenger {options.reply_rate:g}/s")
    router = bench.processes["router"].url
    token = bench.desk.token
    async with httpx.AsyncClient(base_url=router, headers={"Authorization": f"Bearer {token}"}, timeout=30) as me:
        listed = (await me.get("/api/chats", params={"limit": 1})).json()["items"]
        chat_id = listed[0]["id"]
        accepted = await me.post(f"/api/chats/{chat_id}/accept")
        if accepted.status_code != 200:
            raise RuntimeError(f"the reply chat could not be accepted: {accepted.status_code} {accepted.text}")
        sent: dict[str, float] = {}
        answered: list[float] = []

        async def reply(index: int) -> None:
            text = f"reply {index}"
            sent[text] = time.time()
            started = time.perf_counter()
            try:
                status = (await me.post(f"/api/chats/{chat_id}/messages", json={"text": text})).status_code
            except httpx.HTTPError as exc:
                status = 0
                phase.notes.append(f"reply {index}: {type(exc).__name__}")
            answered.append(time.perf_counter() - started)
            if status != 202:
                phase.notes.append(f"reply {index} answered {status}")

        start = time.perf_counter()
        tasks = []
        for index in range(options.replies):
            if (wait := start + index / options.reply_rate - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(reply(index)))
        await asyncio.gather(*tasks)
    clock = bench.replies_clock
    await settle(lambda: set(sent) <= set(clock.arrived), STRAGGLER_SECONDS)
    delays = [clock.arrived[text] - at for text, at in sent.items() if text in clock.arrived]
    phase.add("replies", len(sent))
    phase.add("delivered", len(delays))
    phase.add_latencies("deliver", delays)
    phase.add_latencies("reply_post", answered)
    return phase


def seeded_documents(bench: Bench, first: int, count: int) -> tuple[list[Document], list[Document], list[Document]]:
    """Messages `first`.. of an old history as the router stores them, with their (closed) chats and contacts,
    MESSAGES_PER_SEEDED_CHAT messages to a chat."""
    channel, long_ago = bench.desk.channel_id, datetime.now(UTC) - timedelta(days=30)
    contacts: list[Document] = []
    chats: list[Document] = []
    messages: list[Document] = []
    for n in range(first, first + count):
        chat_id = f"seedchat{n // MESSAGES_PER_SEEDED_CHAT:09d}"
        contact_id = f"seedcontact{n // MESSAGES_PER_SEEDED_CHAT:09d}"
        if n % MESSAGES_PER_SEEDED_CHAT == 0:
            contacts.append(
                {
                    "_id": contact_id,
                    "sender_key": f"{channel}:seed-{n}",
                    "channel_id": channel,
                    "external_id": f"seed-{n}",
                    "name": "Old customer",
                    "profile_status": "resolved",
                    "created_at": long_ago,
                }
            )
            chats.append(
                {
                    "_id": chat_id,
                    "channel_id": channel,
                    "queue_id": bench.desk.queue_id,
                    "contact_id": contact_id,
                    "contact_name": "Old customer",
                    "status": "closed",
                    "operator_id": bench.desk.operator_id,
                    "offered_to": [],
                    "offered_ever": [bench.desk.operator_id],
                    "reserved_for": None,
                    "declined_by": [],
                    "waiting": False,
                    "offer_version": 3,
                    "unpublished": {},
                    "created_at": long_ago,
                    "last_message_at": long_ago,
                }
            )
        messages.append(
            {
                "_id": new_id(),
                "dedupe_key": f"{channel}:seed-{n}",
                "chat_id": chat_id,
                "channel_id": channel,
                "direction": "incoming",
                "type": "text",
                "text": f"an old message, number {n}",
                "sender": f"seed-{n // MESSAGES_PER_SEEDED_CHAT}",
                "provider_message_id": f"seed-{n}",
                "attachments": [],
                "location": None,
                "status": "received",
                "read": True,
                "routed": True,
                "sent_at": long_ago,
                "created_at": long_ago,
            }
        )
    return contacts, chats, messages


@dataclass(frozen=True)
class Seeding:
    stored: int  # messages stored after seeding
    seeded: int
    seconds: float


async def seed_history(bench: Bench, target: int) -> Seeding:
    """Insert an old history straight into the database until `target` messages are stored (counting what the
    services stored) or the seeding budget is spent."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(bench.settings.mongodb_url, tz_aware=True)
    db = client.get_default_database()
    # Counted without reading the messages: nx-27017 answers `count_documents` by reading every one under its lock
    # (99 s at 1,000,000 on the loaded machine, with a kept database); the seeded ones are noted in a document.
    have = await db.messages.estimated_document_count()
    noted = await db.bench_seeding.find_one({"_id": "history"})
    seeded = int(noted["seeded"]) if noted else 0
    started = time.monotonic()
    deadline = started + bench.options.seed_seconds
    added = 0
    try:
        while have + added < target and time.monotonic() < deadline:
            count = min(SEED_BATCH, target - have - added)
            contacts, chats, messages = seeded_documents(bench, seeded + added, count)
            if contacts:
                await db.contacts.insert_many(contacts, ordered=False)
                await db.chats.insert_many(chats, ordered=False)
            await db.messages.insert_many(messages, ordered=False)
            added += count
            await db.bench_seeding.update_one({"_id": "history"}, {"$set": {"seeded": seeded + added}}, upsert=True)
    finally:
        await client.close()
    return Seeding(have + added, added, time.monotonic() - started)


async def history(bench: Bench, small: Phase) -> Phase:
    """(5) p99 at `--history-rate` again after seeding up to `--history` stored messages (`small` was measured
    with about `--small-history`)."""
    options = bench.options
    seeding = await seed_history(bench, options.history)
    stored = seeding.stored
    phase = Phase("history", f"5 history: {stored:,} stored")
    phase.add("seeded", seeding.seeded)
    phase.add("seed_rate", seeding.seeded / max(seeding.seconds, 1e-9), "msgs/s")
    phase.add("seed_seconds", seeding.seconds, "s")
    if stored < options.history:
        phase.notes.append(
            f"seeding stopped at the {options.seed_seconds:.0f} s budget: {stored:,} of {options.history:,} stored"
        )
    await quiet(bench, 5.0)
    rate = options.history_rate
    large = await stream(bench, rate, round(rate * options.seconds), "big", "")
    phase.add("stored_messages", stored)
    for key in ("throughput", "notify_p50", "notify_p95", "notify_p99"):
        phase.add(key, large.value(key), "ms" if key.startswith("notify") else "/s")
    phase.add("p99_ratio_to_small", large.value("notify_p99") / small.value("notify_p99"))
    phase.notes += large.notes
    return phase


async def soak(bench: Bench) -> Phase:
    """(6) `--soak` messages at `--soak-rate`, then each process's resident memory."""
    options = bench.options
    before = {name: rss_mb(process.pid) for name, process in bench.processes.services.items()}
    run = await stream(bench, options.soak_rate, options.soak, "soak", f"6 soak {options.soak:,} messages", 1000)
    phase = Phase("soak", run.title)
    kept = ("offered_rate", "notified", "throughput", "notify_p50", "notify_p99", "load_average_1m")
    for metric in run.metrics:
        if metric.key in kept or metric.key.startswith("cpu_"):
            phase.add(metric.key, metric.value, metric.unit)
    phase.notes += run.notes
    for name, process in bench.processes.services.items():
        phase.add(f"rss_{name}", rss_mb(process.pid), "MB")
        phase.add(f"rss_{name}_growth", rss_mb(process.pid) - before[name], "MB")
    phase.add("rss_nx27017", rss_mb(bench.mongo.pid), "MB")
    return phase


# Frames where a thread waits: samples ending in them are idle time, left out of the profile's shares.
IDLE_FRAMES = ("EpollSelector.select", "_worker (concurrent/futures/thread.py:81)", "Condition.wait", "Event.wait")


@contextlib.asynccontextmanager
async def profiling(
    bench: Bench, label: str, names: Sequence[str], enabled: bool = True, seconds: float | None = None
) -> AsyncIterator[None]:
    """py-spy (a separate program: `uv pip install py-spy` into a scratch venv) sampling the named processes for
    `seconds` (default `--profile-seconds`) while the block runs; collapsed stacks are written beside the JSON and
    summarised."""
    if not enabled or bench.options.py_spy is None:
        yield
        return
    out_dir = (bench.options.json_path or Path("bench-results.json")).resolve().parent / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {name: out_dir / f"{label}-{name}.txt" for name in names}
    pids = bench.pids()
    recorders = [
        await asyncio.create_subprocess_exec(
            bench.options.py_spy,
            "record",
            "--pid",
            str(pids[name]),
            "--duration",
            str(int(seconds or bench.options.profile_seconds)),
            "--idle",
            "--format",
            "raw",
            "--output",
            str(path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for name, path in targets.items()
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            await recorder.wait()
        for name, path in targets.items():
            if path.exists():
                print(f"\n== {label}, {name}: busy samples by function (self, then with callees), from {path}")
                print(summarise(path))


def summarise(path: Path, top: int = 15) -> str:
    """The functions with most busy samples in a py-spy collapsed-stacks file: on top of the stack, and
    anywhere in it; samples whose top frame is a wait (IDLE_FRAMES) count as idle."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_FRAMES):
            idle += int(count)
            continue
        busy += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    if not busy:
        return f"(no busy samples; {idle} idle)"
    lines = [f"{busy} busy samples, {idle} idle"]
    lines += [f"{100 * n / busy:5.1f}% self  {frame}" for frame, n in own.most_common(top)]
    lines += [f"{100 * n / busy:5.1f}% incl  {frame}" for frame, n in inclusive.most_common(top * 3) if n < 0.97 * busy]
    return "\n".join(lines)


def bench_settings(infra: Infra, vhost: str, mongo: MongoServer, simulator_url: str) -> Settings:
    ingress_port = free_port()
    return Settings(
        amqp_url=infra.amqp_url(vhost),
        mongodb_url=mongo.url("bench"),
        admin_token=ADMIN_TOKEN,
        ingress_port=ingress_port,
        public_base_url=f"http://127.0.0.1:{ingress_port}",
        telegram_api_url=f"{simulator_url}/telegram",
        meta_graph_api_url=f"{simulator_url}/graph/v21.0",
        twilio_api_url=f"{simulator_url}/twilio",
        router_port=free_port(),
        dispatcher_port=free_port(),
        profiles_port=free_port(),
        attachments_port=free_port(),
        allow_private_fetch=True,
        # Every benchmark message opens a chat that nobody accepts: without a long offer timeout the router
        # would offer tens of thousands of them again every minute, which is not the load being measured.
        offer_timeout_seconds=86_400.0,
        ingress_workers=1,  # one process (py-spy profiles it by pid); throughput.py sets its counts per round
    )


@contextlib.asynccontextmanager
async def notifications(bench_arrivals: Arrivals, amqp_url: str, operator_id: str) -> AsyncIterator[None]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.get_queue(operator_routing_key(operator_id), ensure=True)
        await queue.consume(bench_arrivals.on_message, no_ack=True)
        yield
    finally:
        await connection.close()


async def run_phases(infra: Infra, vhost: str, options: Options, work_dir: Path) -> list[Phase]:
    mongo = MongoServer(work_dir / "nx")
    await mongo.start()
    clock = ReplyClock()
    simulator = HttpServer(simulator_app(clock), "127.0.0.1", free_port())
    await simulator.start()
    simulator_url = f"http://127.0.0.1:{simulator.port}"
    settings = bench_settings(infra, vhost, mongo, simulator_url)
    processes = Processes(settings, work_dir / "logs")
    try:
        await processes.start(*SERVICES)
        # The bench's operator accepts nothing: with the usual offer timeout every chat of the run would be
        # offered again every half minute, tens of thousands of reminders (see BENCHMARKS.md).
        outgoing = f"{simulator_url}/thirdparty/{PROVIDER}/outgoing"
        desk = await seed_desk(settings, outgoing, max_chats=1000, offer_timeout_seconds=86_400)
        arrivals = Arrivals()
        bench = Bench(options, settings, processes, mongo, desk, arrivals, clock, simulator_url, infra, vhost)
        async with notifications(arrivals, settings.amqp_url, desk.operator_id):
            phases = [await publish_vs_intake(bench), await raw_inserts(bench)]
            stored = (await seed_history(bench, options.small_history)).stored
            rate = options.history_rate
            await quiet(bench, 5.0)
            small = await stream(bench, rate, round(rate * options.seconds), "small", "")
            small.add("stored_messages", stored)
            baseline = Phase("baseline", f"5 history: {stored:,} stored")
            for key in ("throughput", "notify_p50", "notify_p95", "notify_p99"):
                baseline.add(key, small.value(key), "ms" if key.startswith("notify") else "/s")
            # The larger history is measured next, before the rates leave thousands of open chats behind (the
            # bench's operator never accepts one): the two measurements differ in stored history only.
            phases += [baseline, await history(bench, small)]
            phases += await rates(bench)
            phases.append(await replies(bench))
            if options.soak:
                phases.append(await soak(bench))
            phases.append(memory(bench))
        return phases
    except BaseException:
        print(processes.logs(), file=sys.stderr)
        raise
    finally:
        await processes.close()
        await simulator.stop()
        await mongo.stop()


def memory(bench: Bench) -> Phase:
    phase = Phase("memory", "7 resident memory at the end")
    for name, process in bench.processes.services.items():
        phase.add(f"rss_{name}", rss_mb(process.pid), "MB")
    phase.add("rss_nx27017", rss_mb(bench.mongo.pid), "MB")
    return phase


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kb = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    )
    rabbit = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "rabbitmq": rabbit or "unknown",
    }


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.full", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight in (1)")
    parser.add_argument("--messages", type=int, default=5000, help="publishes and webhooks in (1)")
    parser.add_argument("--rates", default="25,50,100,200,300", help="offered first messages per second in (3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each rate of (3) and (5) is offered")
    parser.add_argument("--followup-rate", type=float, default=50.0, help="offered follow-up messages/s in (3b)")
    parser.add_argument("--replies", type=int, default=200, help="replies posted in (4)")
    parser.add_argument("--reply-rate", type=float, default=20.0, help="replies per second in (4)")
    parser.add_argument("--small-history", type=int, default=10_000, help="stored messages for the p99 baseline")
    parser.add_argument("--history", type=int, default=1_000_000, help="stored messages for the p99 comparison")
    parser.add_argument("--history-rate", type=float, default=20.0, help="offered rate of the p99 comparison")
    parser.add_argument("--seed-seconds", type=float, default=300.0, help="budget for seeding the history")
    parser.add_argument("--soak", type=int, default=100_000, help="messages before the memory reading (0: skip)")
    parser.add_argument("--soak-rate", type=float, default=50.0, help="offered rate of the soak (1,000 customers)")
    parser.add_argument("--py-spy", default=None, help="path of a py-spy to profile the highest rate with")
    parser.add_argument("--profile-seconds", type=float, default=15.0)
    parser.add_argument("--json", type=Path, default=None, dest="json_path", help="also write the results here")
    args = parser.parse_args(argv)
    return Options(
        args.concurrency,
        args.messages,
        tuple(float(r) for r in args.rates.split(",") if r),
        args.seconds,
        args.followup_rate,
        args.replies,
        args.reply_rate,
        args.small_history,
        args.history,
        args.history_rate,
        args.seed_seconds,
        args.soak,
        args.soak_rate,
        args.py_spy,
        args.profile_seconds,
        args.json_path,
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    load_before = os.getloadavg()
    started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="omni-bench-"))
    try:
        with start_infra() as infra, bench_vhost(infra) as vhost:
            phases = asyncio.run(run_phases(infra, vhost, options, work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print(table(phases))
    host = machine()
    print(
        f"\n{host['cpus']} x {host['cpu']}, {host['memory_gb']} GB; python {host['python']}; "
        f"RabbitMQ {host['rabbitmq']}; load average (1, 5, 15 min) before {load_before} after {load_after}; "
        f"total {elapsed / 60:.1f} min"
    )
    if options.json_path is not None:
        report = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
            "machine": {**host, "load_average_before": load_before, "load_average_after": load_after},
            "total_seconds": elapsed,
            "phases": {phase.key: phase.to_json() for phase in phases},
        }
        options.json_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
