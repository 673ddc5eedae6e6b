"""kill -9 the router, and separately the dispatcher, in the middle of a 2,000-message stream, then restart each:
every accepted message is stored exactly once and every operator reply is delivered exactly once.

One stream carries both kills, one after the other (the router a third of the way in, the dispatcher two thirds
in, each restarted before the next kill), which keeps the suite's time down; the counts are checked at the end.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

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
DEAD_SECONDS = 1.0  # how long a killed service stays down
# A messenger API answers in about this long (Telegram's and Graph's are 0.1-0.3 s away): replies in flight when the
# dispatcher dies have reached the messenger without the dispatcher hearing back.
MESSENGER_LATENCY = 0.15


@dataclass
class Kill:
    victim: str
    at_progress: float
    progress: float = 0.0
    seconds_in: float = 0.0
    restart_seconds: float = 0.0

    async def run(self, processes: Processes, progress: Callable[[], float], started: float) -> None:
        await wait_for(f"{self.at_progress:.0%} of the stream", lambda: _true(progress() >= self.at_progress), 90, 0.01)
        self.progress = progress()
        processes[self.victim].kill()
        self.seconds_in = time.monotonic() - started
        await asyncio.sleep(DEAD_SECONDS)
        self.restart_seconds = await processes[self.victim].restart()

    def __str__(self) -> str:
        return (
            f"kill -9 {self.victim} at {self.progress:.0%} of the stream ({self.seconds_in:.1f} s in), down "
            f"{DEAD_SECONDS:.0f} s, healthy again {self.restart_seconds:.1f} s after its restart"
        )


async def test_kill_9_the_router_then_the_dispatcher_in_the_middle_of_the_stream(
    processes: Processes, settings: Settings, simulator: Simulator, db: Database
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

        def messages_done() -> float:
            return (len(customers.accepted) - CHATS) / (MESSAGES - CHATS)

        def replies_done() -> float:
            return len(operator.queued) / REPLIES

        router, dispatcher = Kill("router", 1 / 3), Kill("dispatcher", 2 / 3)

        async def kills() -> None:
            await router.run(processes, messages_done, started)
            await dispatcher.run(processes, replies_done, started)

        started = time.monotonic()
        await asyncio.gather(
            paced(MESSAGES - CHATS, RATE, message),
            paced(REPLIES, REPLIES * RATE / (MESSAGES - CHATS), reply),
            kills(),
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
        await asyncio.sleep(1.0)  # room for a late duplicate to land before counting
        ledger = await Ledger.read(db, simulator.state.deliveries(), simulator.state.replays())
    finally:
        await customers.close()
        await operator.close()

    print(f"\n{router}\n{dispatcher}\nstreamed {MESSAGES} messages and {REPLIES} replies in {streamed:.1f} s")
    print(f"{customers.report()}, {operator.report()}")
    print(f"counts {ledger.counts()}")
    ledger.assert_exactly_once(set(customers.accepted), set(operator.queued))
    assert len(customers.accepted) == MESSAGES
    # Each kill landed mid-stream: at or after its point and with work still to come. On a busy machine the
    # router's restart can take long enough for the replies to run ahead of the dispatcher's point.
    for kill in (router, dispatcher):
        assert kill.at_progress <= kill.progress < 1.0, kill
    assert processes["router"].starts == processes["dispatcher"].starts == 2


async def _has(operator: Operator, chats: int) -> bool:
    return len(await operator.chats()) >= chats


async def _true(value: bool) -> bool:
    return value
