"""Stop the MongoDB server for 10 s mid-stream and start it again: nothing lost, nothing doubled.

What the consumers were handed meanwhile fails (each attempt after PyMongo's 5 s server selection) and goes
round the wait queues. The retry budget below covers the outage with room to spare: even attempts that failed
at once would wait 0.5 + 1 + 2 + 4 x 6 = 27.5 s before the 10th would park a message.
"""

import asyncio
import time

import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.processes import MongoServer, Processes
from tests.support.stack import ADMIN_TOKEN, Simulator
from tests.support.traffic import PROVIDER, Customers, Ledger, Operator, client, paced, seed_desk, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.timeout(240)]

SERVICES = ("ingress", "router", "dispatcher", "profiles")
MESSAGES = 850
RATE = 50.0  # webhooks per second: a 17 s stream
CHATS = 30
REPLIES = 85  # over the same 17 s
STOP_AT = 4.0  # seconds into the stream
STOP_SECONDS = 10.0
RETRY_DELAYS_MS = [500, 1000, 2000, 4000]
MAX_ATTEMPTS = 10


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"retry_delays_ms": RETRY_DELAYS_MS, "max_attempts": MAX_ATTEMPTS})


async def test_database_stopped_for_ten_seconds(
    processes: Processes, settings: Settings, simulator: Simulator, db: Database, mongo_server: MongoServer
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

        outage: dict[str, float] = {}

        async def stop_the_database() -> None:
            await asyncio.sleep(STOP_AT)
            outage["stored_before"] = len(customers.accepted)
            await mongo_server.stop()
            outage["at"] = time.monotonic()
            await asyncio.sleep(STOP_SECONDS)
            outage["accepted_meanwhile"] = len(customers.accepted) - outage["stored_before"]
            await mongo_server.start()
            outage["restarted"] = time.monotonic()

        started = time.monotonic()
        await asyncio.gather(
            paced(MESSAGES - CHATS, RATE, message),
            paced(REPLIES, REPLIES * RATE / (MESSAGES - CHATS), reply),
            stop_the_database(),
        )
        streamed = time.monotonic() - started

        async def all_stored() -> bool:
            return await db.messages.count_documents({"direction": "incoming", "routed": True}) >= MESSAGES

        async def all_sent() -> bool:
            outgoing = await db.messages.count_documents({"direction": "outgoing"})
            sent = await db.messages.count_documents({"direction": "outgoing", "status": "sent"})
            return outgoing == sent >= len(operator.queued)

        await wait_for("every message stored and routed", all_stored, timeout=120)
        caught_up = time.monotonic() - outage["restarted"]
        await wait_for("every reply sent", all_sent, timeout=90)
        await asyncio.sleep(2.0)  # room for a late duplicate to land before counting
        ledger = await Ledger.read(db, simulator.state.deliveries(), simulator.state.replays())
        async with client(processes["router"].url, ADMIN_TOKEN) as admin:
            parked = (await admin.get("/api/admin/parked")).json()["items"]
    finally:
        await customers.close()
        await operator.close()

    print(
        f"\nnx-27017 stopped {outage['at'] - started:.1f} s into the stream for {STOP_SECONDS:.0f} s; "
        f"ingress accepted {outage['accepted_meanwhile']:.0f} webhooks meanwhile; every message stored "
        f"{caught_up:.1f} s after the restart; streamed in {streamed:.1f} s"
    )
    print(f"{customers.report()}, {operator.report()}")
    print(f"counts {ledger.counts()}")
    ledger.assert_exactly_once(set(customers.accepted), set(operator.queued))
    assert len(customers.accepted) == MESSAGES
    # Ingress knows the channel from before the outage: it kept queueing and refused nothing (503 would say it
    # needed the database). A request a busy machine left unanswered (0) is retried like any messenger's.
    assert set(customers.answers) <= {200, 0}, f"webhooks refused: {dict(customers.answers)}"
    assert outage["accepted_meanwhile"] > 0
    assert parked == [], f"parked: {parked}"


async def _has(operator: Operator, chats: int) -> bool:
    return len(await operator.chats()) >= chats
