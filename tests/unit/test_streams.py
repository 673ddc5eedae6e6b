"""Operators' live streams on the fakes: replay after a position, the hub handing each notification once to its
operator's streams (one recorded late too), a stream that falls behind, retention, and single-use tickets.
(tests/integration/test_notifications.py checks the same on the MongoDB notification log.)"""

import asyncio

import pytest

from omni_contracts import ChatNotification
from omni_router.domain.errors import Unauthorized
from omni_router.service_layer.streams import (
    BACKLOG,
    BATCH,
    LATE_SECONDS,
    TICKET_SECONDS,
    Position,
    prune,
    stored_after,
)
from tests.support.fakes import FakeNotificationLog
from tests.support.world import World, fake_world


def _note(operator_id: str, n: int = 0) -> ChatNotification:
    return ChatNotification(event="chat.offered", chat_id=f"c{n}", operator_id=operator_id)


@pytest.fixture
def world() -> World:
    return fake_world()


def log_of(world: World) -> FakeNotificationLog:
    log = world.router.ports.notification_log
    assert isinstance(log, FakeNotificationLog)
    return log


async def test_a_note_recorded_again_keeps_its_first_record_and_replay_reads_in_batches(world: World) -> None:
    log = log_of(world)
    note, other = _note("op-1"), _note("op-2")
    await log.record([note])
    await log.record([note, other])  # the outbox sweep publishing the first again, with one more
    assert [(n.operator_id, n.body) for n in log.stored] == [
        ("op-1", note.model_dump_json()),
        ("op-2", other.model_dump_json()),
    ]
    await log.record([_note("op-1", n) for n in range(1, BATCH + 5)])
    replayed = [n async for n in stored_after(log, "op-1", log.position_at(0))]
    assert len(replayed) == BATCH + 5 and replayed == sorted(replayed, key=lambda n: n.id)
    assert [n async for n in stored_after(log, "op-1", replayed[-1].id)] == []


async def test_prune_deletes_only_what_is_past_the_retention(world: World) -> None:
    log = log_of(world)
    await log.record([_note("old")])
    world.clock.advance(2 * 3600)
    await log.record([_note("young")])
    world.clock.advance(71 * 3600)
    assert await prune(log, world.clock, retention_hours=72) == 1
    assert [n.operator_id for n in log.stored] == ["young"]
    assert await prune(log, world.clock, retention_hours=72) == 0


async def test_the_hub_hands_each_note_once_to_its_operators_streams_also_one_recorded_late(world: World) -> None:
    hub, log = world.router.hub, log_of(world)
    position = Position(log.position_at(world.clock.time() - 1), log)
    async with hub.subscribe("op-1") as mine, hub.subscribe("op-2") as theirs:
        first, second, third = _note("op-1", 1), _note("op-2", 2), _note("op-1", 3)
        await log.record([first, second])
        await hub.poll()
        world.clock.advance(0.5)
        await log.record([third])
        await hub.poll()
        await hub.poll()  # reading the recent window again hands nothing twice
        handed = [mine.queue.get_nowait() for _ in range(mine.queue.qsize())]
        assert [n.body for n in handed] == [first.model_dump_json(), third.model_dump_json()]
        assert theirs.queue.qsize() == 1 and not mine.behind
    assert [position.take(n) for n in reversed(handed)] == [True, True]
    assert position.last == handed[-1].id  # the one taken late does not move the stream back
    replayed = [n async for n in stored_after(log, "op-1", position.start)]
    assert not any(position.take(n) for n in replayed)  # replay and live overlap: nothing twice
    world.clock.advance(3 * LATE_SECONDS)
    await hub.poll()  # nobody listens: nothing to do, and the seen ids are forgotten in time


async def test_a_stream_too_far_behind_is_marked_to_catch_up_from_the_log(world: World) -> None:
    hub, log = world.router.hub, log_of(world)
    async with hub.subscribe("op-1") as feed:
        await log.record([_note("op-1", n) for n in range(BACKLOG + 1)])
        await hub.poll()
        assert feed.behind and feed.queue.full()
    first, last = log.stored[0], log.stored[-1]
    position = Position(first.id, log)
    for note in log.stored[1:]:
        position.take(note)
    assert first.id <= position.catch_up_from() < last.id
    many = Position(log.position_at(0), log)
    for n in range(2 * BACKLOG + 2):
        world.clock.advance(0.01)
        await log.record([_note("op-9", 10_000 + n)])
    assert all(many.take(note) for note in log.stored if note.operator_id == "op-9")


async def test_the_hub_polls_while_someone_listens(world: World) -> None:
    hub, log = world.router.hub, log_of(world)
    hub._interval = 0.01
    running = asyncio.create_task(hub.run())
    try:
        async with hub.subscribe("op-1") as feed:
            await log.record([_note("op-1")])
            got = await asyncio.wait_for(feed.queue.get(), 2)
            assert got.operator_id == "op-1"
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_a_ticket_opens_one_stream_once_within_its_minute(world: World) -> None:
    tickets = world.router.tickets
    ann = await world.operator("ann")
    ticket, expires_at = await tickets.issue(ann)
    assert expires_at == world.clock.time() + TICKET_SECONDS
    assert (await tickets.holder(ticket)).id == ann.id
    with pytest.raises(Unauthorized):
        await tickets.holder(ticket)  # spent
    late, _ = await tickets.issue(ann)
    world.clock.advance(TICKET_SECONDS + 1)
    with pytest.raises(Unauthorized):
        await tickets.holder(late)
    gone, _ = await tickets.issue(ann)
    await world.router.admin.delete("operators", ann.id)
    with pytest.raises(Unauthorized):
        await tickets.holder(gone)
