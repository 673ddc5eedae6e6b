"""A quick benchmark of this machine: the broker's own ceiling, webhook intake, offer latency, reply delivery.

Run from the workspace root: `uv run python -m bench.quick [--messages N] [--concurrency C] [--json PATH]`.
It uses the tests' infrastructure (tests/support): the local RabbitMQ in a vhost of its own, an nx-27017 (or
container) MongoDB, and the services on loopback ports in this one process, the load generator included, so
the numbers of (2) are what ingress manages while sharing its event loop with the HTTP client that drives it.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage
from pymongo import AsyncMongoClient, monitoring

from omni_runtime.database import Document
from omni_runtime.settings import Settings
from omni_runtime.topology import Topology, operator_routing_key
from omni_runtime.web import HttpServer
from omni_simulator.app import create_app as simulator_app
from omni_simulator.state import RecordedRequest, SimulatorState
from tests.support.infra import Infra, create_vhost, delete_vhost, free_port, start_infra
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import ADMIN_TOKEN, Stack, eventually, signed

SENDERS = 50
RAW_QUEUE = "bench.raw"
PHASE_LIMIT_SECONDS = 60.0
STRAGGLER_SECONDS = 15.0
REPLY_CUSTOMER = "Reply Bench"


@dataclass(frozen=True)
class Options:
    messages: int
    concurrency: int
    rate: float
    seconds: float
    replies: int
    reply_rate: float
    json_path: Path | None
    senders: int = SENDERS


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    unit: str = ""


@dataclass
class Phase:
    """One measured phase: its metrics in table order, and notes on anything odd seen while it ran."""

    key: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, value: float, unit: str = "") -> None:
        self.metrics.append(Metric(key, value, unit))

    def add_latencies(self, prefix: str, samples_s: Sequence[float]) -> None:
        for name, value in percentiles_ms(samples_s).items():
            self.add(f"{prefix}_{name}", value, "ms")

    def extend(self, other: "Phase") -> None:
        self.metrics += other.metrics
        self.notes += other.notes

    def value(self, key: str) -> float:
        return next(m.value for m in self.metrics if m.key == key)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, **{m.key: m.value for m in self.metrics}, "notes": self.notes}


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99 and the maximum, in milliseconds; empty when there are no samples."""
    if not samples_s:
        return {}
    ordered = sorted(samples_s)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1000

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": ordered[-1] * 1000}


def bench_settings(infra: Infra, vhost: str, simulator_url: str) -> Settings:
    """The same settings as the tests' `settings` fixture, on a database of the benchmark's own."""
    ingress_port = free_port()
    return Settings(
        amqp_url=infra.amqp_url(vhost),
        mongodb_url=f"{infra.mongo_base}/bench{uuid4().hex[:16]}",
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
        retry_delays_ms=[200, 400, 800],
        max_attempts=4,
        publish_timeout_seconds=2.0,
        http_timeout_seconds=2.0,
        outbox_sweep_seconds=1.0,
        allow_private_fetch=True,
    )


class TimedSimulatorState(SimulatorState):
    """The simulator's state, also noting on this process's clock when each reply text first arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def record(self, recorded: RecordedRequest) -> RecordedRequest:
        body = recorded.body
        if isinstance(body, dict) and isinstance(body.get("text"), str):
            self.arrived.setdefault(body["text"], time.perf_counter())
        return super().record(recorded)


class OperatorArrivals:
    """Arrival times of notifications on an operator's queue, by the text of the customer message they carry.

    `stored_at` is the message's `created_at` (wall clock, written by the router when it stored the message),
    which splits the latency into "until stored" and "stored until notified".
    """

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.stored_at: dict[str, float] = {}
        self.events: Counter[str] = Counter()
        self.repeats = 0

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        now = time.perf_counter()
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


class Stopwatch:
    """Wall time and this process's CPU time over a stretch; CPU close to wall means its one event loop is saturated."""

    def __enter__(self) -> "Stopwatch":
        self.wall = self.cpu = 0.0
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    def add_to(self, phase: Phase) -> None:
        phase.add("seconds", self.wall, "s")
        phase.add("process_cpu", self.cpu / self.wall, "cores")


class MongoCommands(monitoring.CommandListener):
    """Every database command of this process (all services run here): how many, and how long they took,
    by command and collection."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.by_name: Counter[str] = Counter()
        self.micros_by_name: Counter[str] = Counter()
        self._names: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self._names[event.request_id] = (
            f"{event.command_name} {target}" if isinstance(target, str) else event.command_name
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id, event.command_name, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id, event.command_name, event.duration_micros)

    def _done(self, request_id: int, name: str, micros: int) -> None:
        self.count += 1
        self.seconds += micros / 1e6
        full = self._names.pop(request_id, name)
        self.by_name[full] += 1
        self.micros_by_name[full] += micros

    def snapshot(self) -> tuple[int, float, Counter[str], Counter[str]]:
        return self.count, self.seconds, Counter(self.by_name), Counter(self.micros_by_name)

    def since(self, snapshot: tuple[int, float, Counter[str], Counter[str]], units: int) -> Phase:
        """The commands issued since `snapshot`, per unit (message or reply) handled, as metrics to add to a phase."""
        count, seconds, names, micros = snapshot
        usage = Phase("mongo", "")
        usage.add("mongo_cmds_per_msg", (self.count - count) / max(units, 1))
        # Summed client-side durations: waits in the database's queue count as often as commands overlap.
        usage.add("mongo_ms_per_msg", (self.seconds - seconds) * 1000 / max(units, 1), "ms")
        top = (self.by_name - names).most_common(12)
        spent = self.micros_by_name - micros
        usage.notes.append(
            "mongo commands per unit (mean ms each): "
            + ", ".join(f"{name} {n / max(units, 1):.2f} ({spent[name] / n / 1000:.1f})" for name, n in top)
        )
        return usage


class LoopLag:
    """How late a 10 ms sleep wakes up: the event loop's backlog, which this one-process benchmark shares."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[float] = []

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator["LoopLag"]:
        task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(time.perf_counter() - start - self.interval)


def webhook(desk: Desk, message_id: str, text: str, sender: str, **extra: Any) -> tuple[bytes, dict[str, str]]:
    return signed(customer_message(message_id, text=text, sender=sender, **extra), desk.secret)


def webhook_url(stack: Stack, desk: Desk) -> str:
    return f"{stack.url('ingress')}/webhooks/{desk.provider}/receive"


def http_client(connections: int, base_url: str = "", token: str | None = None) -> httpx.AsyncClient:
    # trust_env=False: an HTTP(S)_PROXY from the environment must not divert loopback traffic.
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30, trust_env=False)


async def closed_loop(count: int, concurrency: int, work: Callable[[int, int], Awaitable[None]]) -> None:
    """Run work(worker, index) for index 0..count-1 on `concurrency` workers, each taking the next index when done."""
    indexes = iter(range(count))

    async def worker(number: int) -> None:
        for index in indexes:
            await work(number, index)

    await asyncio.gather(*(worker(number) for number in range(concurrency)))


async def open_loop(count: int, rate: float, work: Callable[[int], Coroutine[Any, Any, None]]) -> list[float]:
    """Start work(i) at i / rate seconds, whatever became of the earlier ones; returns how late each start was."""
    start = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    late: list[float] = []
    for index in range(count):
        due = start + index / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        late.append(max(0.0, time.perf_counter() - due))
        tasks.append(asyncio.create_task(work(index)))
    await asyncio.gather(*tasks)
    return late


async def settle(done: Callable[[], bool], timeout: float) -> bool:
    """Wait until `done()` holds or `timeout` passes; arrivals are timed where they land, so polling costs nothing."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if done():
            return True
        await asyncio.sleep(0.02)
    return done()


async def raw_publish(settings: Settings, payload_size: int, options: Options) -> Phase:
    """Confirmed, persistent, mandatory publishes straight through aio-pika: what the broker and client allow."""
    phase = Phase("raw_publish", "1 raw aio-pika confirmed publish")
    payload = b"x" * payload_size
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.declare_queue(RAW_QUEUE, durable=True)

        async def publish(worker: int, index: int) -> None:
            message = aio_pika.Message(
                payload,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=uuid4().hex,
            )
            await channel.default_exchange.publish(message, RAW_QUEUE, mandatory=True)

        await closed_loop(min(200, options.messages), options.concurrency, publish)  # warm-up
        with Stopwatch() as watch:
            await closed_loop(options.messages, options.concurrency, publish)
        await channel.queue_delete(RAW_QUEUE)
    finally:
        await connection.close()
    phase.add("payload_bytes", payload_size, "B")
    phase.add("published", options.messages)
    phase.add("rate", options.messages / watch.wall, "/s")
    watch.add_to(phase)
    return phase


async def intake(stack: Stack, desk: Desk, options: Options, ceiling: float) -> Phase:
    """Webhooks accepted per second over real HTTP with the router stopped, so nothing drains the queue."""
    phase = Phase("intake", "2 ingress intake (router stopped)")
    warm = min(200, options.messages)
    bodies = [
        webhook(desk, f"in-{index}", f"intake {index}", f"cust-{index % SENDERS}")
        for index in range(warm + options.messages)
    ]
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    url = webhook_url(stack, desk)
    async with contextlib.AsyncExitStack() as clients:
        # One single-connection client per worker: httpcore's pool rescans every connection on each request,
        # which with one shared pool of C connections costs the load generator more than ingress costs.
        pool = [await clients.enter_async_context(http_client(1)) for _ in range(options.concurrency)]

        async def post(worker: int, index: int, offset: int = 0, record: bool = True) -> None:
            raw, headers = bodies[offset + index]
            start = time.perf_counter()
            answer = await pool[worker].post(url, content=raw, headers=headers)
            if record:
                latencies.append(time.perf_counter() - start)
                statuses[answer.status_code] += 1

        await closed_loop(warm, options.concurrency, lambda worker, index: post(worker, index, record=False))
        with Stopwatch() as watch:
            await closed_loop(options.messages, options.concurrency, lambda w, index: post(w, index, offset=warm))
    accepted = statuses[200]
    queued = await inbox_depth(stack.settings)
    if queued < warm + accepted:
        phase.notes.append(f"the router's input partitions hold {queued}, expected {warm + accepted}")
    if set(statuses) != {200}:
        phase.notes.append(f"answers: {dict(statuses)}")
    rate = accepted / watch.wall
    phase.add("sent", options.messages)
    phase.add("accepted", accepted)
    phase.add("rate", rate, "/s")
    phase.add("ratio_to_raw", rate / ceiling if ceiling else 0.0)
    watch.add_to(phase)
    phase.add_latencies("post", latencies)
    return phase


async def inbox_depth(settings: Settings, purge: bool = False) -> int:
    """Messages in all the router's input partitions (`router.received.<n>`)."""
    partitions = Topology(partitions=settings.router_partitions).inbox
    return sum([await queue_depth(settings.amqp_url, queue.name, purge) for queue in partitions])


async def queue_depth(amqp_url: str, name: str, purge: bool = False) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        count = int(queue.declaration_result.message_count or 0)
        if purge:
            await queue.purge()
        return count
    finally:
        await connection.close()


async def end_to_end(stack: Stack, desk: Desk, mongo: MongoCommands, options: Options) -> Phase:
    """Webhook POST to the operator's notification, at a fixed offered rate, ingress and router running."""
    phase = Phase("end_to_end", "3 webhook -> operator notification")
    count = max(1, round(options.rate * options.seconds))
    operator_id = next(iter(desk.operators))
    arrivals = OperatorArrivals()
    sent_at: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    answered: list[float] = []
    statuses: Counter[int] = Counter()
    lag = LoopLag()
    connection = await aio_pika.connect(stack.settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(operator_routing_key(operator_id), ensure=True)
        await queue.purge()
        tag = await queue.consume(arrivals.on_message, no_ack=True)
        async with http_client(max(64, options.concurrency)) as client, lag.watching():
            url = webhook_url(stack, desk)

            async def post(index: int) -> None:
                text = f"e2e {index}"
                sender = f"e2e-cust-{index % options.senders if options.senders else index}"
                raw, headers = webhook(desk, f"e2e-{index}", text, sender)
                sent_at[text], sent_wall[text] = time.perf_counter(), time.time()
                answer = await client.post(url, content=raw, headers=headers)
                answered.append(time.perf_counter() - sent_at[text])
                statuses[answer.status_code] += 1

            before = mongo.snapshot()
            with Stopwatch() as watch:
                late = await open_loop(count, options.rate, post)
            last_sent = max(sent_at.values())
            await settle(lambda: set(sent_at) <= set(arrivals.at), STRAGGLER_SECONDS)
            usage = mongo.since(before, len(sent_at))
        await queue.cancel(tag)
    finally:
        await connection.close()
    delays = [arrivals.at[text] - sent for text, sent in sent_at.items() if text in arrivals.at]
    stored = {text: at - sent_wall[text] for text, at in arrivals.stored_at.items() if text in sent_wall}
    routed = [arrivals.at[text] - sent_at[text] - until for text, until in stored.items()]
    first_sent = min(sent_at.values())
    done = max(arrivals.at.values(), default=first_sent)
    missing = len(sent_at) - len(delays)
    if missing:
        unseen = [text for text in sent_at if text not in arrivals.at]
        phase.notes.append(
            f"{missing} of {len(sent_at)} messages got no notification within {STRAGGLER_SECONDS:.0f} s, "
            f"first: {', '.join(unseen[:8])}"
        )
    if set(statuses) != {200}:
        phase.notes.append(f"webhook answers: {dict(statuses)}")
    if arrivals.repeats:
        phase.notes.append(f"{arrivals.repeats} messages were notified more than once")
    phase.notes.append(f"notifications: {dict(arrivals.events)}")
    phase.add("offered_rate", count / max(last_sent - first_sent, 1e-9), "/s")
    phase.add("notified", len(delays))
    phase.add("missing", missing)
    phase.add("throughput", len(delays) / max(done - first_sent, 1e-9), "/s")
    phase.add_latencies("notify", delays)
    phase.add_latencies("webhook_post", answered)
    phase.add_latencies("until_stored", list(stored.values()))
    phase.add_latencies("stored_to_notified", routed)
    phase.add("send_late_p99", percentiles_ms(late).get("p99", 0.0), "ms")
    phase.add("process_cpu", watch.cpu / watch.wall, "cores")
    phase.add("loop_lag_p99", percentiles_ms(lag.samples).get("p99", 0.0), "ms")
    phase.extend(usage)
    return phase


async def reply_chat(stack: Stack, desk: Desk, token: str) -> str:
    """A chat of a customer of its own, accepted by the operator, for the replies to go to."""
    raw, headers = webhook(desk, "reply-in-1", "I need an answer", "reply-cust", sender_name=REPLY_CUSTOMER)
    async with http_client(4) as client:
        posted = await client.post(webhook_url(stack, desk), content=raw, headers=headers)
    if posted.status_code != 200:
        raise RuntimeError(f"the reply chat's webhook was refused: {posted.status_code} {posted.text}")
    async with http_client(4, stack.url("router"), token) as operator:

        async def chat() -> Document | None:
            items: list[Document] = (await operator.get("/api/chats", params={"limit": 200})).json()["items"]
            return next((c for c in items if c["contact"]["name"] == REPLY_CUSTOMER), None)

        found = await eventually(chat, timeout=STRAGGLER_SECONDS)
        accepted = await operator.post(f"/api/chats/{found['id']}/accept")
    if accepted.status_code != 200:
        raise RuntimeError(f"the operator could not accept the reply chat: {accepted.status_code} {accepted.text}")
    chat_id: str = found["id"]
    return chat_id


async def replies(
    stack: Stack, desk: Desk, state: TimedSimulatorState, mongo: MongoCommands, options: Options
) -> Phase:
    """Operator reply POST to the simulator receiving the signed delivery, dispatcher running."""
    phase = Phase("reply", "4 reply -> simulator")
    token = next(iter(desk.operators.values()))
    chat_id = await reply_chat(stack, desk, token)
    sent_at: dict[str, float] = {}
    answered: list[float] = []
    statuses: Counter[int] = Counter()
    lag = LoopLag()
    async with http_client(64, stack.url("router"), token) as operator, lag.watching():

        async def reply(index: int) -> None:
            text = f"reply {index}"
            sent_at[text] = time.perf_counter()
            answer = await operator.post(f"/api/chats/{chat_id}/messages", json={"text": text})
            answered.append(time.perf_counter() - sent_at[text])
            statuses[answer.status_code] += 1

        before = mongo.snapshot()
        with Stopwatch() as watch:
            await open_loop(options.replies, options.reply_rate, reply)
        await settle(lambda: set(sent_at) <= set(state.arrived), STRAGGLER_SECONDS)
        usage = mongo.since(before, len(sent_at))
    delays = [state.arrived[text] - sent for text, sent in sent_at.items() if text in state.arrived]
    missing = len(sent_at) - len(delays)
    if missing:
        phase.notes.append(f"{missing} of {len(sent_at)} replies did not reach the simulator")
    if set(statuses) != {202}:
        phase.notes.append(f"reply answers: {dict(statuses)}")
    phase.add("replies", len(sent_at))
    phase.add("delivered", len(delays))
    phase.add_latencies("deliver", delays)
    phase.add_latencies("reply_post", answered)
    phase.add("process_cpu", watch.cpu / watch.wall, "cores")
    phase.add("loop_lag_p99", percentiles_ms(lag.samples).get("p99", 0.0), "ms")
    phase.extend(usage)
    return phase


@contextlib.contextmanager
def bench_vhost(infra: Infra) -> Iterator[str]:
    name = f"bench-{uuid4().hex[:12]}"
    create_vhost(infra, name)
    try:
        yield name
    finally:
        delete_vhost(infra, name)


async def drop_database(settings: Settings) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    try:
        await client.drop_database(client.get_default_database().name)
    finally:
        await client.close()


async def run_phases(infra: Infra, vhost: str, options: Options) -> list[Phase]:
    mongo = MongoCommands()
    # Registered before any client exists: it then sees every service's commands.
    monitoring.register(mongo)
    state = TimedSimulatorState()
    simulator = HttpServer(simulator_app(state), "127.0.0.1", free_port())
    await simulator.start()
    simulator_url = f"http://127.0.0.1:{simulator.port}"
    settings = bench_settings(infra, vhost, simulator_url)
    stack = Stack(settings)
    try:
        await stack.start("ingress", "router")
        outgoing = f"{simulator_url}/thirdparty/acme/outgoing"
        desk = await seed_desk(stack, operators=1, outgoing_url=outgoing)
        await stack.stop("router")
        payload_size = len(webhook(desk, "in-0", "intake 0", "cust-0")[0])
        async with asyncio.timeout(PHASE_LIMIT_SECONDS):
            raw = await raw_publish(settings, payload_size, options)
        async with asyncio.timeout(PHASE_LIMIT_SECONDS):
            intook = await intake(stack, desk, options, raw.value("rate"))
        await inbox_depth(settings, purge=True)
        await stack.start("router")
        async with asyncio.timeout(options.seconds + PHASE_LIMIT_SECONDS):
            e2e = await end_to_end(stack, desk, mongo, options)
        await stack.start("dispatcher")
        async with asyncio.timeout(PHASE_LIMIT_SECONDS):
            replied = await replies(stack, desk, state, mongo, options)
        return [raw, intook, e2e, replied]
    finally:
        await stack.close()
        await simulator.stop()
        await drop_database(settings)


def table(phases: Sequence[Phase]) -> str:
    lines = [f"{'phase':<36} {'metric':<24} {'value':>12}", "-" * 80]
    for phase in phases:
        title = phase.title
        for metric in phase.metrics:
            lines.append(f"{title:<36} {metric.key:<24} {shown(metric):>12} {metric.unit}")
            title = ""
        lines.extend(f"{'':<36} note: {note}" for note in phase.notes)
    return "\n".join(lines)


def shown(metric: Metric) -> str:
    if metric.unit in ("ms", "s", "cores") or (metric.unit == "" and metric.value % 1):
        return f"{metric.value:.2f}"
    return f"{metric.value:.0f}"


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.quick", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000, help="publishes in (1) and webhooks in (2)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight in (1) and (2)")
    parser.add_argument("--rate", type=float, default=50.0, help="offered webhooks per second in (3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (3) offers its rate")
    parser.add_argument("--replies", type=int, default=100, help="replies posted in (4)")
    parser.add_argument("--reply-rate", type=float, default=20.0, help="replies per second in (4)")
    parser.add_argument("--json", type=Path, default=None, dest="json_path", help="also write the results here")
    parser.add_argument(
        "--senders", type=int, default=SENDERS, help="customers taking turns in (3); 0: each message a new customer"
    )
    args = parser.parse_args(argv)
    if min(args.messages, args.concurrency, args.replies) < 1 or min(args.rate, args.seconds, args.reply_rate) <= 0:
        parser.error("counts, rates and durations must be positive")
    return Options(
        args.messages,
        args.concurrency,
        args.rate,
        args.seconds,
        args.replies,
        args.reply_rate,
        args.json_path,
        args.senders,
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with start_infra() as infra, bench_vhost(infra) as vhost:
        phases = asyncio.run(run_phases(infra, vhost, options))
    elapsed = time.perf_counter() - started
    print(table(phases))
    # Other work on the machine skews every number here; the load average before and after shows if there was any.
    load = (load_before, os.getloadavg()[0])
    print(
        f"\ninfra: {infra.kind}; cpus: {os.cpu_count()}; python {platform.python_version()}; "
        f"load average before/after: {load[0]:.2f}/{load[1]:.2f}; total {elapsed:.1f} s"
    )
    if options.json_path is not None:
        report = {
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "infra": infra.kind,
                "load_average_before_after": load,
            },
            "total_seconds": elapsed,
            "phases": {phase.key: phase.to_json() for phase in phases},
        }
        options.json_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
