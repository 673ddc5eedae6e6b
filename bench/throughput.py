"""The throughput benchmark: each figure beside the machine's own limit, measured in the same run.

Run from the workspace root: `make bench` (or `uv run python -m bench.throughput [options]`; `--help`). It uses
the local RabbitMQ in a vhost of its own, an nx-27017 of its own (or `--mongodb-url`: a given MongoDB, a database
of the bench's own in it, dropped at the end), the five services as processes and the provider simulator.

1. Ingress against the broker: Debian's `wrk` (64 connections) POSTs pre-signed third-party webhooks, cycling
   through 20,000 of them (bench/webhooks.lua), with the router stopped so that nothing drains the partitions;
   in the same round, the raw rate of confirmed publishes straight through aio-pika (the load generator's
   `publish` job, at the same concurrency) to the same broker. Webhooks/s, raw publishes/s, their ratio; for
   each `--ingress-workers` count, `--repeats` rounds.
2. The router's drain: a backlog of `--drain` webhooks (`--senders` customers, so mostly returning ones) queued
   with the router stopped, then the router started: messages/s it stores and notifies, beside the database's
   raw `insert_many` rate of the same round; database commands per message from the router's
   `omni_database_commands_total`; then that every webhook of the backlog was stored once and its operator
   notified once (`chat.offered` carrying it, or `message.new`).
2b. Returning customers' messages at `--returning-rate`/s offered for `--returning-seconds` (`--returning-senders`
   customers, their first messages streamed before and not measured, then their profiles resolved as a returning
   customer's are): offered and taken rates, p50/p99 webhook
   -> `message.new`, the router's database commands per message over the measured part (by command too), the
   router's and nx-27017's CPU.
3. p99 webhook -> operator notification at `--notify-rate`/s offered (new customers' first messages).
4. With `--history N`: p99 at `--history-rate` with about 10,000 stored messages, and again after seeding up to
   N (the 1,000,000 comparison; seeding takes minutes).
5. Each service's resident memory at the end.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from pymongo import AsyncMongoClient

from bench import full
from bench.load import webhook
from bench.quick import bench_vhost, inbox_depth
from omni_providers.signatures import OMNI_SIGNATURE_HEADER
from omni_router.service_layer.inbox import PENDING_CONTACT_SECONDS
from omni_runtime.database import Document
from omni_runtime.settings import Settings
from omni_runtime.web import HttpServer
from omni_simulator.app import create_app as simulator_app
from tests.support.infra import Infra, free_port, start_infra
from tests.support.processes import MongoServer, Processes, ServiceProcess
from tests.support.stack import ADMIN_TOKEN
from tests.support.traffic import PROVIDER, SECRET, seed_desk

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "webhooks.lua"
COMMANDS = re.compile(r"^omni_database_commands_total\{[^}]*\} (\S+)$", re.M)
COMMAND = re.compile(r"^omni_database_commands_total\{([^}]*)\} (\S+)$", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')
CONSUMED = re.compile(
    r'^omni_consumed_messages_total\{(?=[^}]*outcome="ok")(?=[^}]*queue="router\.received\.\d+")[^}]*\} (\S+)$', re.M
)
DRAIN_LIMIT_SECONDS = 600.0


@dataclass(frozen=True)
class Options:
    repeats: int = 3
    connections: int = 64
    wrk_seconds: float = 5.0
    webhooks: int = 20_000
    publishes: int = 5_000
    ingress_workers: tuple[int, ...] = (1, 2)
    drain: int = 2_000
    senders: int = 50
    returning_rate: float = 200.0
    returning_seconds: float = 10.0
    returning_senders: int = 100
    notify_rate: float = 100.0
    notify_seconds: float = 10.0
    history: int = 0
    small_history: int = 10_000
    history_rate: float = 20.0
    history_seconds: float = 20.0
    seed_seconds: float = 420.0
    mongodb_url: str | None = None
    keep_database: bool = False
    py_spy: str | None = None
    json_path: Path | None = None


@dataclass
class Run:
    """What the rounds share: the settings, the processes, the desk, the notification clock."""

    options: Options
    settings: Settings
    processes: Processes
    mongo: MongoServer | None
    bench: full.Bench
    work_dir: Path
    lines: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)


class ThroughputBench(full.Bench):
    """bench.full's phases, with the database's process counted only where it is ours (not `--mongodb-url`)."""

    def pids(self) -> dict[str, int]:
        found = {name: process.pid for name, process in self.processes.services.items()}
        if self.mongo is not None:
            found["nx27017"] = self.mongo.pid
        if (rabbit := full.broker_pid()) is not None:
            found["rabbitmq"] = rabbit
        return found


def spread(values: Sequence[float], digits: int = 0) -> str:
    """`low-high` of the rounds' values (one value alone when they agree or there is one)."""
    low, high = min(values), max(values)

    def shown(value: float) -> str:
        return f"{value:,.{digits}f}"

    return shown(low) if shown(low) == shown(high) else f"{shown(low)}-{shown(high)}"


def write_webhooks(path: Path, count: int, desk_secret: str) -> int:
    """`count` signed webhooks, one `signature<TAB>body` line each; answers a body's size."""
    job = {"prefix": f"wrk{uuid4().hex[:6]}", "secret": desk_secret}
    size = 0
    with path.open("w") as out:
        for index in range(count):
            raw, headers = webhook(job, index)
            out.write(f"{headers[OMNI_SIGNATURE_HEADER]}\t{raw.decode()}\n")
            size = len(raw)
    return size


async def wrk(url: str, data: Path, connections: int, seconds: float) -> dict[str, Any]:
    """One wrk run against ingress's webhook path; its `done` line as figures."""
    threads = max(1, min(connections, os.cpu_count() or 1))
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "-s", str(SCRIPT), url]
    argv += ["--", f"/webhooks/{PROVIDER}/receive", OMNI_SIGNATURE_HEADER, str(data)]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{out.decode()}\n{err.decode()}")
    result: dict[str, Any] = json.loads(lines[-1])
    seconds_run = result["duration_us"] / 1e6
    errors = result["non_2xx"] + result["connect"] + result["read"] + result["write"] + result["timeout"]
    result["rate"] = (result["requests"] - result["non_2xx"]) / seconds_run
    result["errors"] = errors
    return result


async def use_ingress(run: Run, workers: int) -> None:
    """(Re)start ingress with `workers` worker processes on the same port."""
    processes = run.processes
    if "ingress" in processes.services:
        await processes["ingress"].stop()
    settings = run.settings.model_copy(update={"ingress_workers": workers})
    processes.services["ingress"] = ServiceProcess("ingress", settings, run.work_dir / "logs")
    await processes["ingress"].start()


async def ingress_against_raw(run: Run) -> None:
    """(1) per worker count, `repeats` rounds: raw confirmed publishes, wrk on ingress, raw again; router stopped."""
    options, settings = run.options, run.settings
    data = run.work_dir / "webhooks.tsv"
    size = write_webhooks(data, options.webhooks, SECRET)
    await run.processes["router"].stop()
    await inbox_depth(settings, purge=True)
    run.say(
        f"\n1. ingress vs raw confirmed publishes (wrk: {options.connections} connections, {options.wrk_seconds:g} s,"
        f" cycling {options.webhooks:,} pre-signed webhooks of {size} B; router stopped)"
    )
    for workers in options.ingress_workers:
        await use_ingress(run, workers)
        url = run.processes["ingress"].url
        await wrk(url, data, options.connections, 1)  # warm-up: connections, caches
        await inbox_depth(settings, purge=True)
        ratios, rates, raws = [], [], []
        for round_ in range(1, options.repeats + 1):
            # Raw publishes just before and just after wrk, their mean the limit: the machine is shared, and what
            # else runs on it drifts within a round too.
            before = await raw_publishes(run, f"raw{round_}a")
            await inbox_depth(settings, purge=True)
            profiled = round_ == 1 and workers == 1
            async with full.profiling(run.bench, f"ingress{workers}w", ("ingress",), enabled=profiled):
                taken = await wrk(url, data, options.connections, options.wrk_seconds)
            queued = await inbox_depth(settings, purge=True)
            after = await raw_publishes(run, f"raw{round_}b")
            await inbox_depth(settings, purge=True)
            raw = {"rate": (before["rate"] + after["rate"]) / 2}
            accepted = taken["requests"] - taken["non_2xx"]
            note = "" if queued >= accepted else f"; only {queued:,} queued"
            ratio = taken["rate"] / raw["rate"]
            ratios.append(ratio)
            rates.append(taken["rate"])
            raws.append(raw["rate"])
            run.say(
                f"   {workers} worker(s), round {round_}: {taken['rate']:,.0f} webhooks/s "
                f"(p50 {taken['p50_us'] / 1000:.1f} ms, p99 {taken['p99_us'] / 1000:.1f} ms, "
                f"{taken['errors']} errors{note}) | raw {raw['rate']:,.0f} confirmed publishes/s "
                f"(before {before['rate']:,.0f}, after {after['rate']:,.0f}) | ratio {ratio:.2f}"
            )
        run.say(
            f"   {workers} worker(s): {spread(rates)} webhooks/s against {spread(raws)} raw publishes/s, "
            f"ratio {spread(ratios, 2)}"
        )
        run.figures[f"ingress_{workers}w"] = {"webhooks_per_s": rates, "raw_per_s": raws, "ratio": ratios}
    await use_ingress(run, 1)
    await run.processes["router"].start()


async def raw_publishes(run: Run, prefix: str) -> dict[str, Any]:
    """Confirmed publishes of the events ingress publishes, straight through aio-pika to the same partitions."""
    options, settings = run.options, run.settings
    return await full.load(
        run.bench.job(
            "publish",
            amqp_url=settings.amqp_url,
            partitions=settings.router_partitions,
            channel_id=run.bench.desk.channel_id,
            prefix=prefix,
            warm=min(500, options.publishes),
            count=options.publishes,
            concurrency=options.connections,
        )
    )


async def scrape(url: str, pattern: re.Pattern[str]) -> float:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        text = (await client.get(f"{url}/metrics")).text
    return sum(float(value) for value in pattern.findall(text))


async def drain(run: Run) -> None:
    """(2) `repeats` rounds: raw insert_many, a backlog queued through ingress with the router stopped, its drain."""
    options, settings = run.options, run.settings
    run.say(
        f"\n2. the router draining a backlog of {options.drain:,} webhooks ({options.senders} customers, so "
        f"{options.drain - options.senders:,} from returning ones) beside the database's raw insert_many"
    )
    rates, raws, commands, checks = [], [], [], []
    for round_ in range(1, options.repeats + 1):
        await full.quiet(run.bench, 1.0)
        inserts = await full.load(
            run.bench.job("inserts", mongodb_url=settings.mongodb_url, count=2000, concurrency=16, text_bytes=400)
        )
        router = run.processes["router"]
        await router.stop()
        prefix = f"drain{round_}-{uuid4().hex[:4]}"
        queued = await full.load(
            run.bench.job(
                "webhooks",
                prefix=prefix,
                warm=0,
                count=options.drain,
                concurrency=options.connections,
                senders=options.senders,
            )
        )
        if set(queued["statuses"]) != {"200"}:
            run.say(f"   round {round_}: webhook answers {queued['statuses']}")
        run.bench.arrivals.reset()
        await router.start()
        started = time.monotonic()
        # A new router process counts from zero: a small backlog may be drained before a first scrape could answer.
        done0 = cmds0 = 0.0
        done = done0
        profiled = round_ == 1 and run.mongo is not None
        async with full.profiling(run.bench, "drain", ("router", "nx27017"), enabled=profiled):
            while done < options.drain and time.monotonic() - started < DRAIN_LIMIT_SECONDS:
                await asyncio.sleep(0.5)  # each scrape costs the router a little CPU
                done = await scrape(router.url, CONSUMED)
        seconds = time.monotonic() - started
        cmds = await scrape(router.url, COMMANDS)
        handled = max(done - done0, 1.0)
        rate, per_message = handled / seconds, (cmds - cmds0) / handled
        rates.append(rate)
        raws.append(inserts["insert_many_docs_rate"])
        commands.append(per_message)
        check = await exactly_once(run, prefix, options.drain)
        checks.append(check)
        run.say(
            f"   round {round_}: drained {handled:,.0f} in {seconds:.1f} s: {rate:,.0f} messages/s | raw insert_many "
            f"{inserts['insert_many_docs_rate']:,.0f} documents/s ({rate / inserts['insert_many_docs_rate']:.1%}) | "
            f"{per_message:.1f} database commands per message | stored {check['stored']:,} of {options.drain:,}, "
            f"notified {check['notified']:,} ({check['repeats']} more than once)"
        )
    run.say(
        f"   drain {spread(rates)} messages/s against raw insert_many {spread(raws)} documents/s; "
        f"{spread(commands, 1)} database commands per message"
    )
    run.figures["drain"] = {
        "messages_per_s": rates,
        "raw_insert_many_per_s": raws,
        "commands_per_message": commands,
        "exactly_once": checks,
    }


async def exactly_once(run: Run, prefix: str, count: int) -> dict[str, int]:
    """How many of a backlog's `count` webhooks (texts `<prefix> <n>`) are stored and how many were notified to the
    operator, once the notifications stop coming; `repeats`: notifications of a message already notified."""
    texts = {f"{prefix} {index}" for index in range(count)}
    arrivals = run.bench.arrivals
    await full.drained(arrivals, texts)
    client: AsyncMongoClient[Document] = AsyncMongoClient(run.settings.mongodb_url, tz_aware=True)
    try:
        messages = client.get_default_database()["messages"]
        # A scan on the stand-in; the history is small at this point of the run.
        stored = await messages.count_documents({"direction": "incoming", "text": {"$regex": f"^{re.escape(prefix)} "}})
    finally:
        await client.close()
    return {"stored": stored, "notified": len(texts & arrivals.at.keys()), "repeats": arrivals.repeats}


async def commands_by_name(url: str, by_collection: bool = False) -> dict[str, float]:
    """The process's database commands so far by command name (`find`), or by name and collection (`find chats`)."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        text = (await client.get(f"{url}/metrics")).text
    counted: dict[str, float] = {}
    for labels, value in COMMAND.findall(text):
        named = dict(LABEL.findall(labels))
        name = named.get("command", "")
        if by_collection and named.get("collection"):
            name = f"{name} {named['collection']}"
        counted[name] = counted.get(name, 0.0) + float(value)
    return counted


async def profiles_resolved(mongodb_url: str, prefix: str, limit: float = 30.0) -> None:
    """Until no contact whose sender starts with `prefix` waits for its profile (or `limit` seconds passed): the
    profiles service answers after the first messages were notified, and the router then writes each contact."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_url)
    try:
        contacts = client.get_default_database()["contacts"]
        started = time.monotonic()
        pending = {"external_id": {"$regex": f"^{re.escape(prefix)}"}, "profile_status": "pending"}
        while time.monotonic() - started < limit:
            if not await contacts.count_documents(pending):
                return
            await asyncio.sleep(0.5)
    finally:
        await client.close()


async def returning(run: Run) -> None:
    """(2b) returning customers' messages at a fixed offered rate: the customers' first messages (new chats, not
    measured), then their follow-ups, with the router's database commands over the follow-ups."""
    options, bench = run.options, run.bench
    rate, senders = options.returning_rate, options.returning_senders
    prefix = f"back{uuid4().hex[:4]}"
    router = run.processes["router"]
    await full.quiet(bench, 1.0)
    await full.stream(bench, rate, senders, prefix, "", senders=senders)  # each customer's first message
    first_done = time.monotonic()
    # Returning customers have their profiles: once stored, and once the router's kept contacts are read again (a
    # contact kept while its profile is pending asks for it again with each message).
    await profiles_resolved(run.settings.mongodb_url, f"{prefix}-cust-")
    await asyncio.sleep(max(0.0, PENDING_CONTACT_SECONDS + 1.0 - (time.monotonic() - first_done)))
    await full.quiet(bench, 1.0)
    done0, cmds0 = await scrape(router.url, CONSUMED), await commands_by_name(router.url, by_collection=True)
    count = max(1, round(rate * options.returning_seconds))
    phase = await full.stream(bench, rate, count, prefix, "", senders=senders, first=senders)
    done, cmds = await scrape(router.url, CONSUMED), await commands_by_name(router.url, by_collection=True)
    handled = max(done - done0, 1.0)
    spent = {name: (cmds[name] - cmds0.get(name, 0.0)) / handled for name in cmds}
    spent = {name: per for name, per in sorted(spent.items(), key=lambda kv: -kv[1]) if per > 0}
    per_message = sum(spent.values())
    phase.add("commands_per_message", per_message)
    phase.add("router_handled", handled)
    used = {m.key.removeprefix("cpu_"): m.value for m in phase.metrics if m.key in ("cpu_router", "cpu_nx27017")}
    cpu = ", ".join(f"{name} {cores:.2f}" for name, cores in used.items()) or "not measured (not our database)"
    run.say(
        f"\n2b. returning customers' messages at {rate:g}/s offered for {options.returning_seconds:g} s ({senders} "
        f"customers): offered {phase.value('offered_rate'):,.0f}/s, taken {phase.value('throughput'):,.0f}/s, "
        f"{phase.value('notified'):,.0f} notified, p50 {phase.value('notify_p50'):,.0f} ms, p99 "
        f"{phase.value('notify_p99'):,.0f} ms | {per_message:.2f} database commands per message ("
        + ", ".join(f"{name} {per:.2f}" for name, per in spent.items())
        + f") | CPU cores: {cpu}"
        + "".join(f"\n   note: {note}" for note in phase.notes)
    )
    run.figures["returning"] = {**phase.to_json(), "commands_by_name_per_message": spent}


async def notify_p99(run: Run) -> None:
    """(3) webhook -> operator notification at a fixed offered rate, new customers: the latency split at the moment
    the router built the message (webhook -> stored, stored -> notified), the router's database commands per
    message by name (the profile results that follow included), and the CPU each process used."""
    options = run.options
    router = run.processes["router"]
    await full.quiet(run.bench, 1.0)
    rate = options.notify_rate
    done0, cmds0 = await scrape(router.url, CONSUMED), await commands_by_name(router.url, by_collection=True)
    profiled = run.mongo is not None
    async with full.profiling(run.bench, "notify", ("router", "nx27017"), profiled, options.notify_seconds):
        phase = await full.stream(run.bench, rate, max(1, round(rate * options.notify_seconds)), "notify", "")
    done, cmds = await scrape(router.url, CONSUMED), await commands_by_name(router.url, by_collection=True)
    handled = max(done - done0, 1.0)
    spent = {name: (cmds[name] - cmds0.get(name, 0.0)) / handled for name in cmds}
    spent = {name: per for name, per in sorted(spent.items(), key=lambda kv: -kv[1]) if per > 0}
    cpu = {m.key.removeprefix("cpu_"): m.value for m in phase.metrics if m.key.startswith("cpu_")}
    run.say(
        f"\n3. webhook -> operator notification at {rate:g}/s offered for {options.notify_seconds:g} s (new "
        f"customers): {phase.value('notified'):,.0f} notified, p50 {phase.value('notify_p50'):,.0f} ms, "
        f"p99 {phase.value('notify_p99'):,.0f} ms, throughput {phase.value('throughput'):,.0f}/s | webhook -> "
        f"stored p50 {phase.value('until_stored_p50'):,.0f} / p99 {phase.value('until_stored_p99'):,.0f} ms, stored "
        f"-> notified p50 {phase.value('stored_to_notified_p50'):,.0f} / p99 "
        f"{phase.value('stored_to_notified_p99'):,.0f} ms | {sum(spent.values()):.1f} database commands per message ("
        + ", ".join(f"{name} {per:.2f}" for name, per in spent.items())
        + ") | CPU cores: "
        + ", ".join(f"{name} {cores:.2f}" for name, cores in cpu.items())
        + "".join(f"\n   note: {note}" for note in phase.notes)
    )
    run.figures["notify"] = {**phase.to_json(), "commands_by_name_per_message": spent}


async def history(run: Run) -> None:
    """(4) p99 at a small history, then after seeding up to `--history` stored messages."""
    options = run.options
    bench = run.bench
    stored = (await full.seed_history(bench, options.small_history)).stored
    await full.quiet(bench, 3.0)
    rate, count = options.history_rate, max(1, round(options.history_rate * options.history_seconds))
    # The profiles (with `--py-spy`): the router, and nx-27017 where it is the bench's own, in both streams alike (a
    # profiler takes CPU: profiling only one of them would tilt the comparison).
    names = [name for name in ("router", "nx27017") if name in bench.pids()]
    small_window = time.time()
    async with full.profiling(bench, "history-small", names, seconds=options.history_seconds):
        small = await full.stream(bench, rate, count, "small", "")
    small_window = (small_window, time.time())
    seeding = await full.seed_history(bench, options.history)
    await full.quiet(bench, 5.0)
    large_window = time.time()
    async with full.profiling(bench, "history-large", names, seconds=options.history_seconds):
        large = await full.stream(bench, rate, count, "large", "")
    large_window = (large_window, time.time())
    ratio = large.value("notify_p99") / max(small.value("notify_p99"), 1e-9)
    run.say(
        f"\n4. p99 at {rate:g}/s: {stored:,} stored: p50 {small.value('notify_p50'):,.0f} ms, p99 "
        f"{small.value('notify_p99'):,.0f} ms | {seeding.stored:,} stored (seeded {seeding.seeded:,} in "
        f"{seeding.seconds:.0f} s): p50 {large.value('notify_p50'):,.0f} ms, p99 "
        f"{large.value('notify_p99'):,.0f} ms | ratio {ratio:.2f}"
    )
    run.figures["history"] = {
        "small": small.to_json(),
        "large": large.to_json(),
        "p99_ratio": ratio,
        # Epoch seconds each stream ran, to read a database's command log (bench/nx_timed.py) by phase.
        "windows": {"small": small_window, "large": large_window},
    }


def memory(run: Run) -> None:
    rss = {name: full.rss_mb(process.pid) for name, process in run.processes.services.items()}
    if run.mongo is not None:
        rss["nx-27017"] = full.rss_mb(run.mongo.pid)
    run.say("\n5. resident memory at the end: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss.items()))
    run.figures["rss_mb"] = rss


def bench_settings(infra: Infra, vhost: str, mongodb_url: str, simulator_url: str) -> Settings:
    ingress_port = free_port()
    return Settings(
        amqp_url=infra.amqp_url(vhost),
        mongodb_url=mongodb_url,
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
        # Nobody accepts the bench's chats: without a long offer timeout they would be offered again and again.
        offer_timeout_seconds=86_400.0,
        ingress_workers=1,  # one process (py-spy profiles it by pid); throughput.py sets its counts per round
    )


def given_database(url: str) -> str:
    """`url` with a database of the bench's own (its path replaced), so nothing already there is touched."""
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    hosts = rest.split("/", 1)[0]
    return f"{scheme}://{hosts}/omni_bench_{uuid4().hex[:8]}" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def database(options: Options, work_dir: Path) -> AsyncIterator[tuple[str, MongoServer | None]]:
    if options.mongodb_url and options.keep_database:
        yield options.mongodb_url, None
        return
    if options.mongodb_url:
        url = given_database(options.mongodb_url)
        try:
            yield url, None
        finally:
            client: AsyncMongoClient[Document] = AsyncMongoClient(url)
            await client.drop_database(client.get_default_database().name)
            await client.close()
        return
    mongo = MongoServer(work_dir / "nx")
    await mongo.start()
    try:
        yield mongo.url("bench"), mongo
    finally:
        await mongo.stop()


async def run_all(infra: Infra, vhost: str, options: Options, work_dir: Path) -> Run:
    clock = full.ReplyClock()
    simulator = HttpServer(simulator_app(clock), "127.0.0.1", free_port())
    await simulator.start()
    simulator_url = f"http://127.0.0.1:{simulator.port}"
    async with database(options, work_dir) as (mongodb_url, mongo):
        settings = bench_settings(infra, vhost, mongodb_url, simulator_url)
        processes = Processes(settings, work_dir / "logs")
        try:
            await processes.start(*full.SERVICES)
            outgoing = f"{simulator_url}/thirdparty/{PROVIDER}/outgoing"
            desk = await seed_desk(settings, outgoing, max_chats=1000, offer_timeout_seconds=86_400)
            arrivals = full.Arrivals()
            history_options = full.Options(
                options.connections, 0, (), options.history_seconds, 0, 0, 0, options.small_history,
                options.history, options.history_rate, options.seed_seconds, 0, 0, options.py_spy, options.wrk_seconds,
                options.json_path,
            )  # fmt: skip
            bench = ThroughputBench(
                history_options,
                settings,
                processes,
                mongo,
                desk,
                arrivals,
                clock,
                simulator_url,
                infra,
                vhost,
            )
            run = Run(options, settings, processes, mongo, bench, work_dir)
            async with full.notifications(arrivals, settings.amqp_url, desk.operator_id):
                await ingress_against_raw(run)
                if options.drain:
                    await drain(run)
                if options.returning_rate:
                    await returning(run)
                if options.notify_rate:
                    await notify_p99(run)
                if options.history:
                    await history(run)
            memory(run)
            return run
        except BaseException:
            print(processes.logs(), file=sys.stderr)
            raise
        finally:
            await processes.close()
            await simulator.stop()


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--repeats", type=int, default=3, help="rounds of each rate measurement (1) and (2)")
    add("--connections", type=int, default=64, help="wrk's connections, and the raw publishes in flight")
    add("--wrk-seconds", type=float, default=5.0, help="how long each wrk round runs")
    add("--webhooks", type=int, default=20_000, help="pre-signed webhooks wrk cycles through")
    add("--publishes", type=int, default=5_000, help="raw confirmed publishes per round")
    add("--ingress-workers", default="1,2", help="INGRESS_WORKERS counts to measure (1)")
    add("--drain", type=int, default=2_000, help="webhooks in the backlog the router drains (2); 0: skip it")
    add("--senders", type=int, default=50, help="customers the backlog's webhooks come from")
    add("--returning-rate", type=float, default=200.0, help="offered returning customers' webhooks/s of (2b); 0: skip")
    add("--returning-seconds", type=float, default=10.0, help="how long (2b) offers them")
    add("--returning-senders", type=int, default=100, help="customers (2b)'s webhooks come from")
    add("--notify-rate", type=float, default=100.0, help="offered webhooks/s of (3); 0: skip it")
    add("--notify-seconds", type=float, default=10.0, help="how long (3) offers them")
    add("--history", type=int, default=0, help="stored messages for the p99 comparison (4); 0: skip it")
    add("--small-history", type=int, default=10_000, help="stored messages of (4)'s baseline")
    add("--history-rate", type=float, default=20.0)
    add("--history-seconds", type=float, default=20.0)
    add("--seed-seconds", type=float, default=420.0, help="budget for seeding (4)'s history")
    add("--mongodb-url", default=None, help="a MongoDB to use (a database of the bench's own in it) for nx-27017")
    add(
        "--keep-database",
        action="store_true",
        help="with --mongodb-url: use its database as named and keep it (a seeded history serves the next run)",
    )
    add(
        "--py-spy",
        default=None,
        help="a py-spy program: profile ingress (wrk, 1 worker), the router's drain and (4)'s large history",
    )
    add("--json", type=Path, default=None, dest="json_path", help="also write the figures here")
    args = parser.parse_args(argv)
    return Options(
        repeats=args.repeats,
        connections=args.connections,
        wrk_seconds=args.wrk_seconds,
        webhooks=args.webhooks,
        publishes=args.publishes,
        ingress_workers=tuple(int(n) for n in args.ingress_workers.split(",") if n),
        drain=args.drain,
        senders=args.senders,
        returning_rate=args.returning_rate,
        returning_seconds=args.returning_seconds,
        returning_senders=args.returning_senders,
        notify_rate=args.notify_rate,
        notify_seconds=args.notify_seconds,
        history=args.history,
        small_history=args.small_history,
        history_rate=args.history_rate,
        history_seconds=args.history_seconds,
        seed_seconds=args.seed_seconds,
        mongodb_url=args.mongodb_url,
        keep_database=args.keep_database,
        py_spy=args.py_spy,
        json_path=args.json_path,
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench.throughput needs wrk on PATH (Debian: apt-get install wrk)")
    load_before = os.getloadavg()
    started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="omni-bench-"))
    try:
        with start_infra() as infra, bench_vhost(infra) as vhost:
            run = asyncio.run(run_all(infra, vhost, options, work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    host = full.machine()
    elapsed = time.perf_counter() - started
    database_name = "a given MongoDB" if options.mongodb_url else "nx-27017"
    print(
        f"\n{host['cpus']} x {host['cpu']}, {host['memory_gb']} GB; python {host['python']}; RabbitMQ "
        f"{host['rabbitmq']}; database: {database_name}; load average before {load_before}, after "
        f"{os.getloadavg()}; total {elapsed / 60:.1f} min"
    )
    if options.json_path is not None:
        report = {"machine": host, "total_seconds": elapsed, "figures": run.figures, "lines": run.lines}
        options.json_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
