"""The messenger answers 500 and 429 for a minute, then recovers: every reply is delivered once, and each chat's
replies reach the messenger in the order the operator sent them.

The retry budget below outlasts the outage: the 500s wait 1, 2, 5, then 10 s, a 429's Retry-After of 5 s
waits 5 s, so 20 attempts wait at least 4 x 1 + 16 x 5 = 84 s before a reply would be parked.
"""

import asyncio
import time
from collections import defaultdict

import httpx
import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from omni_simulator.state import RecordedRequest
from tests.support.processes import Processes
from tests.support.stack import Simulator
from tests.support.traffic import PROVIDER, Customers, Ledger, Operator, seed_desk, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

OUTAGE_SECONDS = 60.0  # how long the messenger fails
SWITCH_EVERY = 5.0  # it answers 500 for this long, then 429, then 500 again...
RETRY_AFTER = 5.0  # the 429s' Retry-After
CHATS = 10
REPLIES_PER_CHAT = 8  # posted one after the other in each chat, in the first half of the outage
REPLY_EVERY = 3.0
RETRY_DELAYS_MS = [1000, 2000, 5000, 10000]
MAX_ATTEMPTS = 20


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"retry_delays_ms": RETRY_DELAYS_MS, "max_attempts": MAX_ATTEMPTS})


async def test_messenger_fails_for_a_minute(
    processes: Processes, settings: Settings, simulator: Simulator, db: Database
) -> None:
    await processes.start("ingress", "router", "dispatcher")
    desk = await seed_desk(settings, f"{simulator.url}/thirdparty/{PROVIDER}/outgoing")
    customers = Customers(processes["ingress"].url)
    operator = Operator(processes["router"].url, desk.token)
    sent_order: dict[str, list[str]] = defaultdict(list)  # chat id -> reply ids in the order the operator sent them
    try:
        await asyncio.gather(*(customers.write(f"m-{n}", f"cust-{n}", f"#{n}") for n in range(CHATS)))
        await wait_for("every chat opened", lambda: _has(operator, CHATS), timeout=30)
        chat_ids = await operator.chats()

        async def converse(chat_id: str) -> None:
            for k in range(REPLIES_PER_CHAT):
                sent_order[chat_id].append(await operator.reply(chat_id, f"{chat_id} reply {k}"))
                await asyncio.sleep(REPLY_EVERY)

        faults: dict[str, float] = {}
        started = time.monotonic()
        await asyncio.gather(_fail_for(simulator, OUTAGE_SECONDS, faults), *(converse(c) for c in chat_ids))
        recovered = time.monotonic()

        async def all_settled() -> bool:
            pending = await db.messages.count_documents({"direction": "outgoing", "status": "queued"})
            return pending == 0

        await wait_for("every reply settled", all_settled, timeout=120)
        drained = time.monotonic() - recovered
        await asyncio.sleep(2.0)  # room for a late duplicate to land before counting
        ledger = await Ledger.read(db, simulator.state.deliveries(), simulator.state.replays())
    finally:
        await customers.close()
        await operator.close()

    attempts = simulator.state.select("/thirdparty/")
    delivered_order: dict[str, list[str]] = defaultdict(list)
    for request in attempts:
        if 200 <= request.status < 300 and not request.replayed and request.message_id:
            delivered_order[request.body["chat_id"]].append(request.message_id)
    out_of_order = [c for c in chat_ids if delivered_order[c] != sent_order[c]]
    print(
        f"\nmessenger failed for {OUTAGE_SECONDS:.0f} s ({faults['switches']:.0f} switches between 500 and 429); "
        f"every reply settled {drained:.1f} s after it recovered, {recovered - started + drained:.0f} s in all"
    )
    print(
        f"attempts at the messenger {len(attempts)}: "
        f"{dict(sorted(_statuses(attempts).items()))}; chats delivered out of order {len(out_of_order)} of {CHATS}"
    )
    print(f"{operator.report()}; counts {ledger.counts()}")
    ledger.assert_exactly_once(set(customers.accepted), set(operator.queued))
    assert len(operator.queued) == CHATS * REPLIES_PER_CHAT
    assert {500, 429} <= set(_statuses(attempts))
    assert not out_of_order, {c: (sent_order[c], delivered_order[c]) for c in out_of_order[:2]}


async def _fail_for(simulator: Simulator, seconds: float, faults: dict[str, float]) -> None:
    """500 for SWITCH_EVERY seconds, then 429 with Retry-After, and so on for `seconds`; then answer normally."""
    deadline = time.monotonic() + seconds
    switches = 0
    async with httpx.AsyncClient(base_url=simulator.url, timeout=5, trust_env=False) as control:
        while time.monotonic() < deadline:
            await control.delete("/_sim/faults")
            fault = {"path_prefix": "/thirdparty/", "status": 500}
            if switches % 2:
                fault = {"path_prefix": "/thirdparty/", "status": 429, "retry_after": RETRY_AFTER}
            assert (await control.post("/_sim/faults", json=fault)).status_code == 201
            switches += 1
            await asyncio.sleep(min(SWITCH_EVERY, deadline - time.monotonic()))
        await control.delete("/_sim/faults")
    faults["switches"] = switches - 1


def _statuses(requests: list[RecordedRequest]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for request in requests:
        counts[request.status] += 1
    return dict(counts)


async def _has(operator: Operator, chats: int) -> bool:
    return len(await operator.chats()) >= chats
