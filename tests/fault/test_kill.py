"""kill -9 the router, and separately the dispatcher, in the middle of a 2,000-message stream, then restart it:
every accepted message is stored exactly once and every operator reply is delivered exactly once."""

import asyncio
import time

import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.processes import Processes
from tests.support.stack import Simulator
from tests.support.traffic import PROVIDER, Customers, Ledger, Operator, paced, seed_desk, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

MESSAGES = 2000  # customer messages, CHATS of them opening the chats
RATE = 100.0  # webhooks per second: the stream lasts 20 s
CHATS = 40
REPLIES = 200  # operator replies over the same 20 s, spread over the chats
DEAD_SECONDS = 1.0  # how long the killed service stays down
# A messenger API answers in about this long (Telegram's and Graph's are 0.1-0.3 s away): replies in flight when the
# dispatcher dies have reached the messenger without the dispatcher hearing back.
MESSENGER_LATENCY = 0.15


@pytest.mark.parametrize("victim", ["router", "dispatcher"])
async def test_kill_9_in_the_middle_of_the_stream(
    victim: str, processes: Processes, settings: Settings, simulator: Simulator, db: Database
) -> None:
    await processes.start("ingress", "router", "dispatcher")
    desk = await seed_desk(settings, f"{simulator.url}/thirdparty/{PROVIDER}/outgoing")
    await simulator.fault(path_prefix="/thirdparty/", delay=MESSENGER_LATENCY)
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

        def progress() -> float:
            done = len(customers.accepted) - CHATS if victim == "router" else len(operator.queued)
            return done / (MESSAGES - CHATS if victim == "router" else REPLIES)

        kill: dict[str, float] = {}

        async def kill_in_the_middle() -> None:
            await wait_for("the middle of the stream", lambda: _true(progress() >= 0.5), timeout=60, every=0.01)
            kill["progress"] = progress()
            processes[victim].kill()
            kill["at"] = time.monotonic()
            await asyncio.sleep(DEAD_SECONDS)
            kill["restart_seconds"] = await processes[victim].restart()

        started = time.monotonic()
        await asyncio.gather(
            paced(MESSAGES - CHATS, RATE, message),
            paced(REPLIES, REPLIES * RATE / (MESSAGES - CHATS), reply),
            kill_in_the_middle(),
        )
        streamed = time.monotonic() - started

        async def all_stored() -> bool:
            stored = await db.messages.count_documents({"direction": "incoming", "routed": True})
            return stored >= MESSAGES

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
        f"\nkill -9 {victim} at {kill['progress']:.0%} of the stream ({kill['at'] - started:.1f} s in), "
        f"down {DEAD_SECONDS:.0f} s, healthy again {kill['restart_seconds']:.1f} s after its restart; "
        f"streamed {MESSAGES} messages and {REPLIES} replies in {streamed:.1f} s"
    )
    print(
        f"webhook answers {dict(customers.answers)}, reply answers {dict(operator.answers)}, lost answers {operator.unknown}"
    )
    print(f"counts {ledger.counts()}")
    ledger.assert_exactly_once(set(customers.accepted), set(operator.queued))
    assert len(customers.accepted) == MESSAGES
    assert 0.4 <= kill["progress"] <= 0.6


async def _has(operator: Operator, chats: int) -> bool:
    return len(await operator.chats()) >= chats


async def _true(value: bool) -> bool:
    return value
