"""INGRESS_WORKERS: ingress as a real process with two workers on one port; webhooks sent over fresh connections are
taken by both (the kernel spreads the connections), every one queued for the router exactly once."""

import re
from pathlib import Path

import httpx
import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.processes import ServiceProcess
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Stack, eventually, signed

pytestmark = pytest.mark.e2e

WEBHOOKS = 40
WORKER = re.compile(r'^omni_worker\{pid="(\d+)",worker="(\d+)"\} 1\.0$', re.M)
ACCEPTED = re.compile(r'^omni_webhooks_total\{provider="third_party",status="200"\} (\S+)$', re.M)


async def scrape(url: str) -> tuple[str, int]:
    """One worker's figures, over a connection of its own: (worker index, webhooks it accepted)."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        text = (await client.get(f"{url}/metrics")).text
    worker = WORKER.search(text)
    assert worker is not None, text
    accepted = ACCEPTED.search(text)
    return worker.group(2), int(float(accepted.group(1))) if accepted else 0


@pytest.mark.timeout(120)
async def test_two_ingress_workers_share_the_port(
    stack: Stack, db: Database, settings: Settings, tmp_path: Path
) -> None:
    await stack.start("router")
    desk = await seed_desk(stack, operators=1)
    ingress = ServiceProcess("ingress", settings.model_copy(update={"ingress_workers": 2}), tmp_path)
    try:
        await ingress.start()
        for n in range(WEBHOOKS):
            raw, headers = signed(customer_message(f"m-{n}", text=f"hi {n}", sender=f"cust-{n}"), desk.secret)
            async with httpx.AsyncClient(base_url=ingress.url, timeout=10, trust_env=False) as fresh:
                answer = await fresh.post("/webhooks/acme/receive", content=raw, headers=headers)
            assert answer.status_code == 200, answer.text

        seen: dict[str, int] = {}

        async def both_workers_seen() -> bool:
            worker, accepted = await scrape(ingress.url)
            seen[worker] = accepted
            return len(seen) == 2

        await eventually(both_workers_seen, timeout=30, interval=0)
        assert all(accepted > 0 for accepted in seen.values()), seen
        assert sum(seen.values()) == WEBHOOKS, seen

        async def all_stored() -> bool:
            return await db.messages.count_documents({}) == WEBHOOKS

        await eventually(all_stored, timeout=60)
        assert len(await db.messages.distinct("provider_message_id")) == WEBHOOKS
    finally:
        await ingress.stop()
    assert "Traceback" not in ingress.tail(400), ingress.tail()
