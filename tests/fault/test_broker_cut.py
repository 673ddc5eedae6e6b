"""Cut every service's broker connection for 10 s through a TCP proxy mid-stream: the services reconnect by
themselves, ingress answers 503 while it cannot confirm, and the messenger's retries land, each message once."""

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.infra import Infra
from tests.support.processes import Processes
from tests.support.stack import Simulator
from tests.support.tcpproxy import TcpProxy
from tests.support.traffic import PROVIDER, Customers, Ledger, Operator, paced, seed_desk, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.timeout(240)]

SERVICES = ("ingress", "router", "dispatcher", "profiles", "attachments")
MESSAGES = 900
RATE = 50.0  # webhooks per second: an 18 s stream
CHATS = 30
REPLIES = 90  # over the same 18 s
CUT_AT = 4.0  # seconds into the stream
CUT_SECONDS = 10.0


@pytest.fixture
async def proxy(infra: Infra) -> AsyncIterator[TcpProxy]:
    running = TcpProxy(infra.amqp_host, infra.amqp_port)
    await running.start()
    yield running
    await running.close()


@pytest.fixture
def settings(settings: Settings, proxy: TcpProxy) -> Settings:
    """Every service reaches the broker through the proxy."""
    parts = urlsplit(settings.amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return settings.model_copy(update={"amqp_url": urlunsplit(parts._replace(netloc=netloc))})


async def test_broker_cut_for_ten_seconds(
    processes: Processes, settings: Settings, simulator: Simulator, db: Database, proxy: TcpProxy
) -> None:
    await processes.start(*SERVICES)
    desk = await seed_desk(settings, f"{simulator.url}/thirdparty/{PROVIDER}/outgoing")
    customers = Customers(processes["ingress"].url)
    operator = Operator(processes["router"].url, desk.token)
    try:
        await asyncio.gather(*(customers.write(f"m-{n}", f"cust-{n}", f"#{n}") for n in range(CHATS)))
        await wait_for("every chat opened", lambda: _has(operator, CHATS), timeout=30)
        chat_ids = await operator.chats()

        async def message(index: int) -> None:
            n = CHATS + index
            await customers.write(f"m-{n}", f"cust-{n % CHATS}", f"#{n}")

        async def reply(index: int) -> None:
            await operator.reply(chat_ids[index % CHATS], f"reply {index}")

        cut: dict[str, float] = {}

        async def cut_the_link() -> None:
            await asyncio.sleep(CUT_AT)
            proxy.cut()
            cut["at"] = time.monotonic()
            await asyncio.sleep(CUT_SECONDS / 2)
            cut["not_ready"] = sum([not await _ready(processes[name].url) for name in SERVICES])
            await asyncio.sleep(CUT_SECONDS / 2)
            proxy.restore()
            cut["restored"] = time.monotonic()
            await wait_for("every service ready again", lambda: _all_ready(processes), timeout=60, every=0.1)
            cut["reconnected_after"] = time.monotonic() - cut["restored"]

        started = time.monotonic()
        await asyncio.gather(
            paced(MESSAGES - CHATS, RATE, message),
            paced(REPLIES, REPLIES * RATE / (MESSAGES - CHATS), reply),
            cut_the_link(),
        )
        streamed = time.monotonic() - started

        async def all_stored() -> bool:
            return await db.messages.count_documents({"direction": "incoming", "routed": True}) >= MESSAGES

        async def all_sent() -> bool:
            outgoing = await db.messages.count_documents({"direction": "outgoing"})
            sent = await db.messages.count_documents({"direction": "outgoing", "status": "sent"})
            return outgoing == sent >= len(operator.queued)

        await wait_for("every message stored and routed", all_stored, timeout=90)
        await wait_for("every reply sent", all_sent, timeout=90)
        await asyncio.sleep(2.0)  # room for a late duplicate to land before counting
        ledger = await Ledger.read(db, simulator.state.deliveries(), simulator.state.replays())
    finally:
        await customers.close()
        await operator.close()

    print(
        f"\nbroker link cut {cut['at'] - started:.1f} s into the stream for {CUT_SECONDS:.0f} s; "
        f"{cut['not_ready']:.0f} of {len(SERVICES)} services said not ready during the cut; all ready again "
        f"{cut['reconnected_after']:.1f} s after the link was back; streamed in {streamed:.1f} s"
    )
    print(f"{customers.report()}, {operator.report()}")
    print(f"counts {ledger.counts()}")
    assert customers.answers[503] > 0, "ingress should have answered 503 while the broker was unreachable"
    # 503 while it cannot confirm, never another refusal; a request left unanswered (0) is retried.
    assert set(customers.answers) <= {200, 503, 0}, f"answers other than 200 and 503: {dict(customers.answers)}"
    assert cut["not_ready"] == len(SERVICES)
    ledger.assert_exactly_once(set(customers.accepted), set(operator.queued))
    assert len(customers.accepted) == MESSAGES


async def _has(operator: Operator, chats: int) -> bool:
    return len(await operator.chats()) >= chats


async def _ready(url: str) -> bool:
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        try:
            return (await client.get(f"{url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False


async def _all_ready(processes: Processes) -> bool:
    return all([await _ready(processes[name].url) for name in SERVICES])
