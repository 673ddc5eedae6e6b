"""kill -9 the MongoDB server right after the dispatcher handed a reply to the messenger, again and again while
replies flow: every reply reaches the messenger exactly once, and not even a repeat reaches it.

The messenger answers each send after MESSENGER_LATENCY; the test kills the database server as soon as a send
arrives, so the dispatcher hears "accepted" with the database gone and cannot write `sent`. The server comes back
on the same port and data file 3.5 s later, within PyMongo's 5 s server selection: a dispatcher that retried its
whole handler then found the reply still `queued` and sent it again (every kill made a repeat). The last outage
outlasts the quick retries, so that send's outcome goes round a wait queue in its header before it is recorded. Repeats are counted as they
arrive at the messenger, before the third-party Idempotency-Key would drop them (Telegram, Messenger, WhatsApp
and Twilio drop nothing).
"""

import asyncio
import time
from collections import Counter
from functools import partial

import pytest

from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.processes import MongoServer, Processes
from tests.support.stack import Simulator
from tests.support.traffic import PROVIDER, Customers, Ledger, Operator, paced, seed_desk, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.timeout(180)]

SERVICES = ("ingress", "router", "dispatcher")
CHATS = 6
REPLIES = 36
REPLY_RATE = 1.5  # replies per second: a 24 s stream
DOWN_SECONDS = (3.5, 3.5, 3.5, 8.0)  # one kill each
MESSENGER_LATENCY = 0.3  # the database dies while the messenger holds the send
RETRY_DELAYS_MS = [500, 1000, 2000]
MAX_ATTEMPTS = 12


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"retry_delays_ms": RETRY_DELAYS_MS, "max_attempts": MAX_ATTEMPTS})


async def test_database_killed_right_after_sends(
    processes: Processes, settings: Settings, simulator: Simulator, db: Database, mongo_server: MongoServer
) -> None:
    await processes.start(*SERVICES)
    desk = await seed_desk(settings, f"{simulator.url}/thirdparty/{PROVIDER}/outgoing")
    await simulator.fault(path_prefix="/thirdparty/", delay=MESSENGER_LATENCY)
    customers = Customers(processes["ingress"].url)
    operator = Operator(processes["router"].url, desk.token)
    kills: list[str] = []
    try:
        await asyncio.gather(*(customers.write(f"m-{n}", f"cust-{n}", f"#{n}") for n in range(CHATS)))
        await wait_for("every chat opened", lambda: _has(operator, CHATS), timeout=30)
        chat_ids = await operator.chats()

        async def reply(index: int) -> None:
            await operator.reply(chat_ids[index % CHATS], f"reply {index}")

        async def kill_after_sends() -> None:
            seen = _sends(simulator)
            for down in DOWN_SECONDS:
                await wait_for("a send at the messenger", partial(_more_sends, simulator, seen), 60, every=0.005)
                mongo_server.kill()
                killed = time.monotonic()
                await asyncio.sleep(down)
                await mongo_server.start()
                kills.append(f"down {time.monotonic() - killed:.1f} s")
                await asyncio.sleep(1.0)  # sends resume before the next kill waits for one
                seen = _sends(simulator)

        started = time.monotonic()
        await asyncio.gather(paced(REPLIES, REPLY_RATE, reply), kill_after_sends())
        streamed = time.monotonic() - started

        async def all_sent() -> bool:
            outgoing = await db.messages.count_documents({"direction": "outgoing"})
            sent = await db.messages.count_documents({"direction": "outgoing", "status": "sent"})
            return outgoing == sent >= len(operator.queued)

        await wait_for("every reply sent", all_sent, timeout=60)
        await asyncio.sleep(1.0)  # room for a late repeat to land before counting
        ledger = await Ledger.read(db, simulator.state.deliveries(), simulator.state.replays())
    finally:
        await customers.close()
        await operator.close()

    arrived = Counter(
        r.message_id for r in simulator.state.select("/thirdparty/") if r.message_id and 200 <= r.status < 300
    )
    repeated = {reply_id: n for reply_id, n in arrived.items() if n > 1}
    log = processes["dispatcher"].log_path.read_text()
    unrecorded, waited = log.count("done but not recorded"), log.count('"recording": true')
    print(f"\n{len(kills)} kills of nx-27017 right after a send ({', '.join(kills)}); streamed in {streamed:.1f} s")
    print(operator.report())
    print(
        f"sends at the messenger {sum(arrived.values())} for {len(arrived)} replies, repeated {repeated}; "
        f"{unrecorded} accepted while the database was gone, {waited} of them recorded through a wait queue"
    )
    print(f"counts {ledger.counts()}")
    assert len(kills) == len(DOWN_SECONDS) and mongo_server.starts == len(DOWN_SECONDS) + 1
    # Each kill caught a send in flight: the messenger accepted it and the `sent` write failed.
    assert unrecorded >= len(DOWN_SECONDS), f"only {unrecorded} sends were accepted with the database gone"
    assert waited >= 1, "no outcome went round a wait queue"
    ledger.assert_exactly_once(set(customers.accepted), set(operator.queued))
    assert not repeated, f"replies that reached the messenger more than once: {repeated}"


def _sends(simulator: Simulator) -> int:
    return len(simulator.state.select("/thirdparty/"))


async def _more_sends(simulator: Simulator, than: int) -> bool:
    return _sends(simulator) > than


async def _has(operator: Operator, chats: int) -> bool:
    return len(await operator.chats()) >= chats
