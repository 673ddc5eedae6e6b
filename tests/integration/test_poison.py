"""A poison message ends parked through the delivery limit instead of looping.

1. A consumer process that dies on one request: restarted each time (as a supervisor would), it dies
   DELIVERY_LIMIT times, then the consumer parks the request with the cause without running its handler
   again, and the requests behind it are handled once each. Slow start keeps them out of the crashes.
2. The broker's own limit behind it: a consumer that gives a message back every time (no outcome, ever)
   sees the broker dead-letter it into the parking lot, where the admin API and `omni parked` show, keep,
   and discard it.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from typer.testing import CliRunner, Result

from omni_cli.main import app as omni_app
from omni_contracts import MessageOutgoing, ProfileRequested
from omni_runtime.broker import Broker
from omni_runtime.parking import list_parked
from omni_runtime.service import topology_of
from omni_runtime.settings import Settings
from tests.support.crashing_consumer import CRASH_EXIT_CODE, POISON
from tests.support.stack import ADMIN_TOKEN, Stack, eventually

pytestmark = [pytest.mark.integration, pytest.mark.fault]

LIMIT = 3
GOOD = 5
ROOT = Path(__file__).resolve().parents[2]


def consumer_environment(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "AMQP_URL": settings.amqp_url,
        "MONGODB_URL": settings.mongodb_url,
        "DELIVERY_LIMIT": str(settings.delivery_limit),
        "RETRY_DELAYS_MS": ",".join(map(str, settings.retry_delays_ms)),
        "MAX_ATTEMPTS": str(settings.max_attempts),
        "ROUTER_PARTITIONS": str(settings.router_partitions),
        "PYTHONPATH": str(ROOT),
    }


def request(external_id: str) -> ProfileRequested:
    return ProfileRequested(
        contact_id=f"contact-{external_id}", channel_id="ch-1", provider="acme", external_id=external_id
    )


@pytest.mark.timeout(90)
async def test_a_request_that_crashes_its_consumer_is_parked_after_the_delivery_limit(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"delivery_limit": LIMIT})
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    try:
        await broker.publish_event(request(POISON))
        for n in range(GOOD):
            await broker.publish_event(request(f"good-{n}"))

        log = tmp_path / "consumer.log"
        exits: list[int] = []
        started = time.monotonic()
        process: subprocess.Popen[bytes] | None = None
        try:
            while time.monotonic() - started < 60:
                process = subprocess.Popen(
                    [sys.executable, "-m", "tests.support.crashing_consumer", str(log)],
                    env=consumer_environment(settings),
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=(tmp_path / "consumer.err").open("ab"),
                )
                while process.poll() is None:
                    lines = log.read_text().splitlines() if log.exists() else []
                    if sum(line.startswith("handled ") for line in lines) >= GOOD:
                        break
                    await asyncio.sleep(0.05)
                if process.poll() is None:
                    break  # it settled everything: the poison is parked
                exits.append(process.returncode)
            lines = log.read_text().splitlines()
        finally:
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
        elapsed = time.monotonic() - started
        parked = await list_parked(broker, "profiles.requested")
    finally:
        await broker.close()

    print(f"consumer exits {exits} in {elapsed:.1f} s; log: {lines}")
    assert exits == [CRASH_EXIT_CODE] * LIMIT
    assert [line for line in lines if line != "started"] == [
        *[f"crashing on {POISON}"] * LIMIT,
        f"parked {POISON}: handed out {LIMIT + 1} times without an outcome: its consumer crashed, stalled or lost "
        "its broker link each time",
        *[f"handled good-{n}" for n in range(GOOD)],
    ]
    assert [(p.queue, p.body["external_id"], p.attempts) for p in parked] == [("profiles.requested", POISON, 1)]
    assert parked[0].cause.startswith(f"handed out {LIMIT + 1} times without an outcome")


async def omni(stack: Stack, *args: str) -> Result:
    env = {"OMNI_ROUTER_URL": stack.url("router"), "ADMIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"}
    return await asyncio.to_thread(CliRunner().invoke, omni_app, list(args), env=env)


@pytest.mark.timeout(60)
async def test_the_broker_parks_what_is_never_settled_and_the_admin_can_inspect_and_discard_it(
    stack: Stack, settings: Settings
) -> None:
    stack.settings = settings = settings.model_copy(update={"delivery_limit": LIMIT})
    await stack.start("router")
    outgoing = MessageOutgoing(
        message_id="reply-1", chat_id="chat-1", channel_id="ch-1", provider="acme", recipient="cust-1", text="hi"
    )
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    await broker.publish_event(outgoing)
    await broker.close()

    deliveries: list[object] = []
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue("dispatcher.outgoing", ensure=False)

        async def give_back(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            deliveries.append((message.headers or {}).get("x-delivery-count"))
            await message.nack(requeue=True)

        await queue.consume(give_back)
        async with stack.admin() as admin:

            async def parked() -> list[dict[str, Any]]:
                items: list[dict[str, Any]] = (await admin.get("/api/admin/parked")).json()["items"]
                return items

            [item] = await eventually(parked)
            detail = (await admin.get(f"/api/admin/parked/{item['id']}")).json()
            missing = await admin.get("/api/admin/parked/nothing-like-it")
    finally:
        await connection.close()

    print(f"deliveries (x-delivery-count): {deliveries}; parked: {item}")
    assert deliveries == [None, *range(1, LIMIT + 1)]  # the first delivery carries no count
    assert item["queue"] == "dispatcher.outgoing" and item["id"] == outgoing.event_id
    assert item["body"]["message_id"] == "reply-1"
    assert str(item["cause"]).startswith("dead-lettered by the broker (delivery_limit)")
    assert detail["headers"]["x-first-death-reason"] == "delivery_limit"
    assert detail["headers"]["x-death"][0]["queue"] == "dispatcher.outgoing"
    assert (missing.status_code, missing.json()["error"]) == (404, "not_parked")

    shown = await omni(stack, "parked", "show", str(item["id"]))
    assert shown.exit_code == 0 and json.loads(shown.stdout)["cause"] == item["cause"]
    refused = await omni(stack, "parked", "discard")
    assert refused.exit_code == 2
    dropped = await omni(stack, "parked", "discard", "--id", str(item["id"]))
    assert dropped.exit_code == 0 and "discarded 1 parked messages" in dropped.stdout
    again = await omni(stack, "parked", "discard", "--id", str(item["id"]))
    assert again.exit_code == 1 and "discarded 0" in again.stdout
    async with stack.admin() as admin:
        assert (await admin.get("/api/admin/parked")).json()["items"] == []
