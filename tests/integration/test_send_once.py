"""Once a messenger accepted a send, only recording it is tried again: at once for blips, then through the wait
queues with the outcome in a header, parked (not failed) with it when the database stays away; never the send."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from omni_contracts import MessageOutgoing
from omni_dispatcher.delivery import OutgoingFiles, SendOutcome, deliver, record_outcome
from omni_dispatcher.pacing import Pacer
from omni_dispatcher.sequencing import Sequencer
from omni_providers import ProviderRegistry
from omni_runtime.broker import Broker
from omni_runtime.consumer import OUTCOME_HEADER
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.errors import Unrecorded
from omni_runtime.files import FileStore
from omni_runtime.ids import new_id
from omni_runtime.metrics import Metrics
from omni_runtime.parking import list_parked, replay_parked
from omni_runtime.service import configured_consumer
from omni_runtime.settings import Settings
from omni_runtime.topology import DISPATCHER_OUTGOING, ROUTER_UPDATES
from tests.support.processes import MongoServer
from tests.support.stack import Simulator, eventually

pytestmark = pytest.mark.integration

OUTCOME = '{"provider_message_id": "pm-1", "sent_at": "2026-12-04T10:00:00Z"}'


def reply(message_id: str = "msg-1") -> MessageOutgoing:
    return MessageOutgoing(
        message_id=message_id, chat_id="chat-1", channel_id="ch-1", provider="acme", recipient="cust-1", text="hi"
    )


class Script:
    """A handler whose send succeeds and whose recording fails `failures` times (None: for ever)."""

    def __init__(self, failures: int | None) -> None:
        self.failures = failures
        self.sends = 0
        self.records: list[tuple[float, str]] = []  # (seconds in, outcome)
        self.parked: list[str] = []
        self.started = time.monotonic()

    async def handle(self, event: MessageOutgoing) -> None:
        self.sends += 1
        raise Unrecorded(OUTCOME, "AutoReconnect: the database went away")

    async def record(self, event: MessageOutgoing, outcome: str) -> None:
        self.records.append((time.monotonic() - self.started, outcome))
        if self.failures is None or len(self.records) <= self.failures:
            raise AutoReconnect("connection refused")

    async def on_park(self, event: MessageOutgoing | None, cause: str) -> None:
        self.parked.append(cause)


async def test_an_outcome_left_unrecorded_is_recorded_through_a_wait_queue_and_never_sent_again(
    broker: Broker, settings: Settings
) -> None:
    script = Script(failures=4)  # three quick tries on the first delivery, then two more on the next
    consumer = configured_consumer(
        broker, settings, Metrics("test"), DISPATCHER_OUTGOING, MessageOutgoing.model_validate_json,
        script.handle, script.on_park, record=script.record,
    )  # fmt: skip
    await consumer.start()
    try:
        await broker.publish_event(reply())
        await eventually(lambda: _true(len(script.records) == 5), timeout=15)
        await asyncio.sleep(1.0)  # nothing more may come
    finally:
        await consumer.stop()
    print([round(at, 2) for at, _ in script.records])

    assert script.sends == 1
    assert [outcome for _, outcome in script.records] == [OUTCOME] * 5
    at = [at for at, _ in script.records]
    assert at[2] - at[0] < 1.0 and at[3] - at[2] >= settings.retry_delays_ms[0] / 1000 * 0.9  # quick, then waited
    assert script.parked == [] and await list_parked(broker, DISPATCHER_OUTGOING.name) == []


async def test_an_outcome_never_recorded_is_parked_with_it_not_failed_and_a_replay_records_it(
    broker: Broker, settings: Settings
) -> None:
    script = Script(failures=None)
    consumer = configured_consumer(
        broker, settings, Metrics("test"), DISPATCHER_OUTGOING, MessageOutgoing.model_validate_json,
        script.handle, script.on_park, record=script.record,
    )  # fmt: skip
    await consumer.start()
    try:
        await broker.publish_event(reply())
        parked = await eventually(lambda: list_parked(broker, DISPATCHER_OUTGOING.name), timeout=20)
        recorded_before = len(script.records)
        script.failures = recorded_before  # the database is back
        assert await replay_parked(broker, DISPATCHER_OUTGOING.name) == 1
        await eventually(lambda: _true(len(script.records) == recorded_before + 1), timeout=10)
        await asyncio.sleep(0.5)
    finally:
        await consumer.stop()

    [one] = parked
    assert one.headers[OUTCOME_HEADER] == OUTCOME and "recording what was done failed" in one.cause
    assert one.attempts == settings.max_attempts
    assert script.sends == 1  # neither the retries nor the replay sent it again
    assert script.parked == []  # parking did not mark it failed: it was sent
    assert {outcome for _, outcome in script.records} == {OUTCOME}
    assert await list_parked(broker, DISPATCHER_OUTGOING.name) == []


@pytest.fixture
async def own_database(tmp_path: Path) -> AsyncIterator[tuple[MongoServer, Database]]:
    """A database server of this test's own, to kill."""
    server = MongoServer(tmp_path)
    await server.start()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        server.url("send-once"), tz_aware=True, serverSelectionTimeoutMS=2_000
    )
    try:
        yield server, client.get_default_database()
    finally:
        await client.close()
        await server.stop()


async def test_a_send_accepted_while_the_database_dies_raises_unrecorded_with_the_messengers_answer(
    broker: Broker, settings: Settings, simulator: Simulator, own_database: tuple[MongoServer, Database]
) -> None:
    server, db = own_database
    await ensure_indexes(db)
    message_id = new_id()
    await db.channels.insert_one(
        {
            "_id": "ch-1",
            "name": "Acme chat",
            "provider": "acme",
            "source": "bot-1",
            "settings": {"secret": "s3cret", "outgoing_url": f"{simulator.url}/thirdparty/acme/outgoing"},
        }
    )
    await db.messages.insert_one({"_id": message_id, "chat_id": "chat-1", "direction": "outgoing", "status": "queued"})
    await simulator.fault(path_prefix="/thirdparty/", delay=0.5)  # the messenger holds the send a moment
    event = reply(message_id)
    async with httpx.AsyncClient(timeout=5) as http:
        sending = asyncio.create_task(
            deliver(
                event,
                db=db,
                broker=broker,
                registry=ProviderRegistry.from_entry_points(settings),
                http=http,
                metrics=Metrics("test"),
                pacer=Pacer(),
                sequencer=Sequencer(db, stale_after=60.0),
                files=OutgoingFiles(FileStore(db), None),
            )
        )
        await eventually(lambda: _true(bool(simulator.state.requests)), timeout=10, interval=0.005)
        server.kill()  # the messenger has the reply; the dispatcher has not heard back yet
        with pytest.raises(Unrecorded) as unrecorded:
            await sending

    [sent] = simulator.state.requests
    outcome = SendOutcome.model_validate_json(unrecorded.value.outcome)
    assert outcome.provider_message_id == sent.answer_message_id is not None
    await server.start()
    await record_outcome(event, unrecorded.value.outcome, db, broker)
    stored = await db.messages.find_one({"_id": message_id})
    assert stored is not None and stored["status"] == "sent"
    assert stored["provider_message_id"] == outcome.provider_message_id
    assert len(simulator.state.requests) == 1
    announced = await _drain(broker, ROUTER_UPDATES.name)
    assert [(m["kind"], m["message_id"], m["provider_message_id"]) for m in announced] == [
        ("message.sent", message_id, outcome.provider_message_id)
    ]


async def _drain(broker: Broker, queue: str) -> list[dict[str, object]]:
    channel = await broker.new_channel(10)
    try:
        declared = await channel.get_queue(queue)
        found = []
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            found.append(json.loads(message.body))
        return found
    finally:
        await channel.close()


async def _true(value: bool) -> bool:
    return value
