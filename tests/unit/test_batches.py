"""Batches on the router's input (Inbox.receive_batch, as a partition's consumer in batch mode hands them over): in
bulk for returning customers, one by one for what routing must decide atomically, each chat in its order, every
message stored once. Written once: tests/unit runs them on the fakes, tests/integration/test_engine_on_mongo.py on
the MongoDB repositories."""

from collections.abc import Sequence

import pytest
from pymongo.errors import ConnectionFailure

from omni_contracts import MessageReceived
from omni_router.domain.errors import NotFound
from omni_router.domain.model import Channel, Chat, Message, Operator, dedupe_key
from tests.support.world import World


async def stored(world: World, event: MessageReceived) -> Message:
    message = event.message
    found = await world.router.ports.messages.incoming(dedupe_key(message.channel_id, message.provider_message_id))
    assert found is not None
    return found


def new_texts(world: World, operator: Operator, chat: Chat) -> list[str]:
    """The texts of the `message.new` notifications the operator got about the chat, in order."""
    return [n.data["message"]["text"] for n in world.told(operator, "message.new") if n.chat_id == chat.id]


async def returning(world: World, rule: str = "to_all") -> tuple[Channel, Operator, list[Chat]]:
    """Three customers whose chats were offered to the operator (their first messages, one by one)."""
    _, channel, (ann,) = await world.team(rule, [5])
    chats = [await world.write(channel, sender=f"cust-{n}", text=f"first {n}") for n in range(3)]
    assert all(chat.offered_to == (ann.id,) for chat in chats)
    return channel, ann, chats


async def test_returning_customers_messages_are_stored_and_told_in_bulk_each_chat_in_order(world: World) -> None:
    channel, ann, chats = await returning(world)
    batch = [
        world.message(channel, sender="cust-0", text="a1"),
        world.message(channel, sender="cust-1", text="b1"),
        world.message(channel, sender="cust-0", text="a2", attachments=[{"url": "https://x.example/f.png"}]),
        world.message(channel, sender="cust-2", text="c1"),
        world.message(channel, sender="cust-0", text="a3"),
    ]
    assert await world.write_batch(batch) == set()
    for event, chat in zip(batch, [chats[0], chats[1], chats[0], chats[2], chats[0]], strict=True):
        message = await stored(world, event)
        assert message.routed and message.chat_id == chat.id
    assert new_texts(world, ann, chats[0]) == ["a1", "a2", "a3"]
    assert new_texts(world, ann, chats[1]) == ["b1"] and new_texts(world, ann, chats[2]) == ["c1"]
    first = await world.chat(chats[0].id)
    assert first.last_message_at is not None and (first.active_at or 0) == pytest.approx(world.clock.time(), abs=1e-3)
    assert abs((first.last_message_at - batch[4].message.sent_at).total_seconds()) < 0.001  # BSON keeps milliseconds
    [file_request] = [e for e in world.events.published if type(e).__name__ == "AttachmentRequested"]
    assert file_request.message_id == (await stored(world, batch[2])).id  # type: ignore[attr-defined]


async def test_new_customers_and_chats_nobody_was_offered_go_one_by_one_in_order(world: World) -> None:
    channel, ann, chats = await returning(world, "to_available")
    await world.router.desk.set_status(ann, "offline")
    waiting = await world.write(channel, sender="cust-w", text="w0")  # nobody online: waits in line
    assert waiting.waiting
    await world.router.desk.set_status(await world.fresh(ann), "online")  # the line is offered again
    await world.router.desk.set_status(await world.fresh(ann), "away")
    batch = [
        world.message(channel, sender="new-1", text="x1"),
        world.message(channel, sender="cust-0", text="a1"),
        world.message(channel, sender="new-1", text="x2"),
        world.message(channel, sender="cust-1", text="b1"),
    ]
    assert await world.write_batch(batch) == {0, 2}
    new_chat = await world.chat((await stored(world, batch[0])).chat_id)
    assert (await stored(world, batch[2])).chat_id == new_chat.id
    assert all([(await stored(world, event)).routed for event in batch])
    assert new_texts(world, ann, chats[0]) == ["a1"] and new_texts(world, ann, chats[1]) == ["b1"]


async def test_a_chat_nobody_holds_or_was_offered_is_left_to_routing_with_its_later_messages(world: World) -> None:
    _, channel, (ann,) = await world.team("to_available", [1])
    taken = await world.write(channel, sender="cust-0", text="first")
    line = await world.write(channel, sender="cust-1", text="in line")  # ann is full: it waits
    assert taken.offered_to == (ann.id,) and line.waiting
    batch = [
        world.message(channel, sender="cust-1", text="still there?"),
        world.message(channel, sender="cust-0", text="a1"),
        world.message(channel, sender="cust-1", text="hello?"),
    ]
    assert await world.write_batch(batch) == {0, 2}
    assert all([(await stored(world, event)).routed for event in batch])
    assert new_texts(world, ann, taken) == ["a1"] and new_texts(world, ann, line) == []


async def test_a_message_is_stored_once_within_and_across_batches(world: World) -> None:
    channel, ann, chats = await returning(world)
    first = world.message(channel, sender="cust-0", text="once", message_id="m-1")
    again = world.message(channel, sender="cust-0", text="once", message_id="m-1")
    after = world.message(channel, sender="cust-0", text="after")
    assert await world.write_batch([first, again, after]) == {1, 2}  # the repeat, and what follows it in its chat
    assert await world.write_batch([again, world.message(channel, sender="cust-0", text="later")]) == set()
    assert new_texts(world, ann, chats[0]) == ["once", "after", "later"]
    page = await world.router.ports.messages.page(chats[0].id, None, 50)
    assert [m.text for m in page].count("once") == 1


async def test_a_message_of_an_unknown_channel_is_left_and_parked_without_holding_the_others(world: World) -> None:
    channel, ann, chats = await returning(world)
    stray = MessageReceived(
        message=world.message(channel, sender="cust-0", text="lost").message.model_copy(update={"channel_id": "gone"})
    )
    batch = [stray, world.message(channel, sender="cust-1", text="b1")]
    assert await world.router.inbox.receive_batch(batch) == {0}
    with pytest.raises(NotFound):  # one by one it is refused, and the consumer parks it
        await world.router.inbox.receive(stray)
    assert new_texts(world, ann, chats[1]) == ["b1"]


async def test_a_refused_publish_leaves_only_its_chat_to_be_done_again_nothing_lost_or_doubled(world: World) -> None:
    channel, ann, chats = await returning(world)
    _, other, (bob,) = await world.team("to_all", [5])
    theirs = await world.write(other, sender="cust-b", text="first b")
    del world.operator_queues.queues[bob.id]  # bob's queue refuses publishes, ann's takes them
    batch = [
        world.message(other, sender="cust-b", text="b1"),
        world.message(channel, sender="cust-0", text="a1"),
        world.message(other, sender="cust-b", text="b2"),
    ]
    assert await world.router.inbox.receive_batch(batch) == {0, 2}
    assert new_texts(world, ann, chats[0]) == ["a1"] and (await stored(world, batch[1])).routed
    assert not (await stored(world, batch[0])).routed and not (await stored(world, batch[2])).routed
    await world.operator_queues.declare(bob.id)
    for position in (0, 2):  # what the consumer does with what was left
        await world.router.inbox.receive(batch[position])
    assert await world.router.inbox.receive_batch(batch) == set()  # a redelivery of it all: nothing twice
    assert new_texts(world, ann, chats[0]) == ["a1"] and new_texts(world, bob, theirs) == ["b1", "b2"]


async def test_a_batch_whose_write_failed_is_done_again_one_by_one_with_nothing_lost_or_doubled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, ann, chats = await returning(world)
    batch = [world.message(channel, sender=f"cust-{n}", text=f"t{n}") for n in range(3)]
    messages = world.router.ports.messages
    add_incoming_many = messages.add_incoming_many

    async def lost_answer(stored: Sequence[Message]) -> list[bool]:
        await add_incoming_many(stored)  # written, but the answer never came
        raise ConnectionFailure("connection reset")

    monkeypatch.setattr(messages, "add_incoming_many", lost_answer)
    with pytest.raises(ConnectionFailure):
        await world.router.inbox.receive_batch(batch)
    monkeypatch.undo()
    assert not any([(await stored(world, event)).routed for event in batch])  # stored, not routed
    for event in batch:  # what the consumer does after a failed batch
        await world.router.inbox.receive(event)
    assert (
        await world.router.inbox.receive_batch(batch) == set()
    )  # and a redelivery of it all (a crash before the acks)
    for n, chat in enumerate(chats):
        assert new_texts(world, ann, chat) == [f"t{n}"]
        assert len(await world.router.ports.messages.page(chat.id, None, 50)) == 2


async def test_a_redelivered_batch_routes_what_a_crash_left_unrouted(world: World) -> None:
    channel, ann, chats = await returning(world)
    batch = [world.message(channel, sender="cust-0", text="a1"), world.message(channel, sender="cust-0", text="a2")]
    world.operator_queues.down = True
    assert await world.router.inbox.receive_batch(batch) == {0, 1}  # stored, not told: left (or a crash came)
    world.operator_queues.down = False
    assert await world.write_batch(batch) == set()
    assert new_texts(world, ann, chats[0]) == ["a1", "a2"]
    assert all([(await stored(world, event)).routed for event in batch])


async def test_refused_requests_leave_their_messages_before_anyone_is_told_so_nobody_is_told_twice(
    world: World,
) -> None:
    channel, ann, chats = await returning(world)  # their contacts' profiles are pending: each batch asks again
    batch = [world.message(channel, sender="cust-0", text="a1"), world.message(channel, sender="cust-0", text="a2")]
    world.events.down = True
    assert await world.router.inbox.receive_batch(batch) == {0, 1}
    assert new_texts(world, ann, chats[0]) == []
    world.events.down = False
    for event in batch:
        await world.router.inbox.receive(event)
    assert new_texts(world, ann, chats[0]) == ["a1", "a2"]


async def test_messages_stored_by_a_batch_are_found_by_search(world: World) -> None:
    channel, ann, chats = await returning(world)
    batch = [world.message(channel, sender="cust-1", text="zebra parcel"), world.message(channel, sender="cust-2")]
    assert await world.write_batch(batch) == set()
    page = await world.router.workplace.search(ann, "zebra", None, 10)
    assert [(hit.chat_id, hit.entry.kind) for hit in page.items] == [(chats[1].id, "message")]
