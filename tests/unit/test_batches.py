"""Batches on the router's input (Inbox.receive_batch, as a partition's consumer in batch mode hands them over): in
bulk for returning customers, one by one for what routing must decide atomically, each chat in its order, every
message stored once. Written once: tests/unit runs them on the fakes, tests/integration/test_engine_on_mongo.py on
the MongoDB repositories."""

from collections.abc import Sequence

import pytest
from pymongo.errors import ConnectionFailure

from omni_contracts import MessageReceived, ProfileRequested
from omni_router.domain.errors import NotFound
from omni_router.domain.model import Channel, Chat, Message, Operator, dedupe_key, sender_key
from tests.support.world import World
from tests.unit.test_courtesy import CSAT, OPENS_IN_TWO_HOURS, said
from tests.unit.test_integration import delivered, subscribe


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


async def test_a_new_customer_and_a_chat_nobody_was_offered_are_taken_in_the_batch_in_order(world: World) -> None:
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
    assert await world.write_batch(batch) == set()
    new_chat = await world.chat((await stored(world, batch[0])).chat_id)
    assert (await stored(world, batch[2])).chat_id == new_chat.id
    assert new_chat.waiting and new_chat.offered_to == ()  # ann is away: it waits in line
    assert all([(await stored(world, event)).routed for event in batch])
    assert new_texts(world, ann, chats[0]) == ["a1"] and new_texts(world, ann, chats[1]) == ["b1"]


async def test_a_chat_nobody_holds_or_was_offered_is_routed_in_the_batch_with_its_later_messages(
    world: World,
) -> None:
    _, channel, (ann,) = await world.team("to_available", [1])
    taken = await world.write(channel, sender="cust-0", text="first")
    line = await world.write(channel, sender="cust-1", text="in line")  # ann is full: it waits
    assert taken.offered_to == (ann.id,) and line.waiting
    batch = [
        world.message(channel, sender="cust-1", text="still there?"),
        world.message(channel, sender="cust-0", text="a1"),
        world.message(channel, sender="cust-1", text="hello?"),
    ]
    assert await world.write_batch(batch) == set()
    assert all([(await stored(world, event)).routed for event in batch])
    assert new_texts(world, ann, taken) == ["a1"] and new_texts(world, ann, line) == []
    assert (await world.chat(line.id)).waiting


def offers(world: World, operator: Operator) -> list[tuple[str, str | None]]:
    """(chat id, text of the message it carried) of each `chat.offered` the operator got, in order."""
    return [(n.chat_id, (n.data.get("message") or {}).get("text")) for n in world.told(operator, "chat.offered")]


async def test_new_customers_in_a_batch_get_a_contact_and_a_chat_each_offered_with_their_first_message(
    world: World,
) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    batch = [world.message(channel, sender=f"new-{n}", text=f"hi {n}") for n in range(3)]
    assert await world.write_batch(batch) == set()
    chats = [await world.chat((await stored(world, event)).chat_id) for event in batch]
    assert len({chat.id for chat in chats}) == 3 and len({chat.contact_id for chat in chats}) == 3
    assert all(chat.offered_to == (ann.id,) for chat in chats)
    assert offers(world, ann) == [(chat.id, f"hi {n}") for n, chat in enumerate(chats)]
    assert world.told(ann, "message.new") == []  # the offers carried them
    asked = [e for e in world.events.published if isinstance(e, ProfileRequested)]
    assert sorted(e.contact_id for e in asked) == sorted(chat.contact_id for chat in chats)
    page = await world.router.workplace.search(ann, "hi", None, 10)
    assert sorted(str(hit.chat_id) for hit in page.items if hit.entry.kind == "message") == sorted(c.id for c in chats)
    for n, chat in enumerate(chats):
        contact = await world.router.ports.contacts.find(sender_key(channel.id, f"new-{n}"))
        assert contact is not None and contact.id == chat.contact_id
    assert all([(await stored(world, event)).routed for event in batch])


async def test_two_new_customers_and_one_free_unit_one_is_offered_the_other_waits_in_order(world: World) -> None:
    _, channel, (ann,) = await world.team("to_available", [1])
    batch = [
        world.message(channel, sender="new-1", text="first"),
        world.message(channel, sender="new-2", text="second"),
        world.message(channel, sender="new-3", text="third"),
    ]
    assert await world.write_batch(batch) == set()
    first, second, third = [await world.chat((await stored(world, event)).chat_id) for event in batch]
    assert first.offered_to == (ann.id,) and first.reserved_for == ann.id
    assert second.waiting and third.waiting and (await world.fresh(ann)).load == 1  # never over capacity
    assert offers(world, ann) == [(first.id, "first")]
    assert [chat.id for chat in await world.router.ports.chats.waiting(first.queue_id or "", 10)] == [
        second.id,
        third.id,
    ]
    await world.router.desk.close(first.id, await world.fresh(ann))  # a unit back: the line moves, in order
    assert [chat_id for chat_id, _ in offers(world, ann)] == [first.id, second.id]


async def test_a_new_chat_and_its_later_messages_in_one_batch_the_offer_first_then_each_in_order(
    world: World,
) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    batch = [world.message(channel, sender="new-1", text=f"m{n}") for n in range(3)]
    assert await world.write_batch(batch) == set()
    chat = await world.chat((await stored(world, batch[0])).chat_id)
    assert all([(await stored(world, event)).chat_id == chat.id for event in batch])
    assert [(n.event, n.data["message"]["text"]) for n in world.told(ann) if n.chat_id == chat.id] == [
        ("chat.offered", "m0"),
        ("message.new", "m1"),
        ("message.new", "m2"),
    ]
    assert chat.messages_in == 3


async def test_a_redelivered_batch_of_new_customers_stores_and_tells_nothing_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, channel, (ann,) = await world.team("to_available", [1], greeting_text="Hello")
    await subscribe(world)
    batch = [world.message(channel, sender="new-1", text="a"), world.message(channel, sender="new-2", text="b")]
    messages = world.router.ports.messages

    async def crash(ids: Sequence[str]) -> None:
        raise ConnectionFailure("the router died before marking them routed")

    monkeypatch.setattr(messages, "mark_routed_many", crash)
    with pytest.raises(ConnectionFailure):
        await world.router.inbox.receive_batch(batch)
    monkeypatch.undo()
    assert await world.write_batch(batch) == set()  # redelivered
    assert await world.write_batch(batch) == set()  # and once more, all routed now
    first, second = [await world.chat((await stored(world, event)).chat_id) for event in batch]
    for event, chat in zip(batch, (first, second), strict=True):
        contact = await world.router.ports.contacts.find(sender_key(channel.id, event.message.sender))
        assert contact is not None and contact.id == chat.contact_id  # the contact the first delivery added
        assert [c.id for c in await world.router.ports.chats.of_contact(contact.id)] == [chat.id]
    assert first.offered_to == (ann.id,) and second.waiting and (await world.fresh(ann)).load == 1
    offered = world.told(ann, "chat.offered")
    assert [n.chat_id for n in offered] == [first.id]
    told = world.told(ann)
    assert len({n.event_id for n in told}) == len({(n.event, n.chat_id, n.event_id) for n in told})
    assert len(said(world, "Hello")) == 2  # one greeting per chat, not per delivery
    for chat in (first, second):
        assert len(await world.router.ports.messages.page(chat.id, None, 50)) == 2  # the message and the greeting
    created = delivered(world, "chat.created")
    assert sorted({d.webhook.data["chat"]["id"] for d in created}) == sorted([first.id, second.id])
    assert len({d.webhook.id for d in created}) == 2  # repeated under the same ids, never new ones


async def test_duplicates_of_a_new_customers_message_in_a_batch_store_one_contact_one_chat_one_message(
    world: World,
) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    first = world.message(channel, sender="new-1", text="once", message_id="m-1")
    again = world.message(channel, sender="new-1", text="once", message_id="m-1")
    after = world.message(channel, sender="new-1", text="after")
    assert await world.write_batch([first, again, after]) == {1, 2}  # the repeat, and what follows it in its chat
    chat = await world.chat((await stored(world, first)).chat_id)
    assert (await stored(world, after)).chat_id == chat.id
    assert [m.text for m in await world.router.ports.messages.page(chat.id, None, 50)] == ["after", "once"]
    assert [n.event for n in world.told(ann) if n.chat_id == chat.id] == ["chat.offered", "message.new"]
    assert len(await world.router.ports.chats.of_contact(chat.contact_id)) == 1


async def test_a_contact_and_a_chat_another_router_added_first_are_the_ones_the_batch_uses(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    theirs = await world.write(
        channel, sender="racer", text="via the other router"
    )  # this router's batches never saw it
    chats = world.router.ports.chats
    find_open = chats.find_open
    reads: list[str] = []

    async def before_they_opened_it(open_key: str) -> Chat | None:
        reads.append(open_key)
        return None if len(reads) == 1 else await find_open(open_key)  # the batch's read came first

    monkeypatch.setattr(chats, "find_open", before_they_opened_it)
    batch = [world.message(channel, sender="racer", text="r1"), world.message(channel, sender="new-1", text="n1")]
    assert await world.write_batch(batch) == set()
    monkeypatch.undo()
    assert (await stored(world, batch[0])).chat_id == theirs.id  # their contact and their chat: no second of either
    assert [c.id for c in await chats.of_contact(theirs.contact_id)] == [theirs.id]
    assert new_texts(world, ann, theirs) == ["r1"]
    assert [text for _, text in offers(world, ann)] == ["via the other router", "n1"]


async def test_a_new_chat_out_of_hours_in_a_batch_is_answered_once_and_waits_for_the_opening(world: World) -> None:
    _, channel, (ann,) = await world.team(
        "to_available", [5], business_hours=OPENS_IN_TWO_HOURS, greeting_text="Hi", out_of_hours_text="Closed now"
    )
    batch = [world.message(channel, sender="new-1"), world.message(channel, sender="new-2")]
    assert await world.write_batch(batch) == set()
    first, second = [await world.chat((await stored(world, event)).chat_id) for event in batch]
    assert first.waiting and second.waiting and world.told(ann, "chat.offered") == []
    assert len(said(world, "Closed now")) == 2 and said(world, "Hi") == []
    await world.later(7200)
    assert [chat_id for chat_id, _ in offers(world, ann)] == [first.id, second.id]


async def test_a_rating_from_a_customer_without_an_open_chat_is_left_to_receive(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5], csat=CSAT)
    chat = await world.write(channel, sender="cust-1", text="help")
    await world.router.desk.close(chat.id, ann)
    batch = [world.message(channel, sender="cust-1", text="5"), world.message(channel, sender="cust-2", text="1 more")]
    assert await world.write_batch(batch) == {0}  # a new customer's "1 more" rates nothing: it opens a chat
    rated = await world.chat(chat.id)
    assert rated.rating is not None and rated.rating["score"] == 5
    assert (await stored(world, batch[0])).chat_id == chat.id
    opened = await world.chat((await stored(world, batch[1])).chat_id)
    assert opened.id != chat.id and opened.offered_to == (ann.id,)


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


def reading(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The reads of open chats by the batches from now on, in order: `get_many` (the chats the router knows, by id)
    and `find_open` (one by its open key)."""
    chats = world.router.ports.chats
    get_many, find_open = chats.get_many, chats.find_open
    reads: list[str] = []

    async def by_id(chat_ids: Sequence[str]) -> list[Chat]:
        reads.append("get_many")
        return await get_many(chat_ids)

    async def by_key(open_key: str) -> Chat | None:
        reads.append("find_open")
        return await find_open(open_key)

    monkeypatch.setattr(chats, "get_many", by_id)
    monkeypatch.setattr(chats, "find_open", by_key)
    return reads


async def test_returning_customers_chats_are_read_again_each_batch_in_one_read_and_a_closed_one_is_not_taken(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, ann, chats = await returning(world)
    assert (
        await world.write_batch([world.message(channel, sender=f"cust-{n}", text=f"x{n}") for n in range(3)]) == set()
    )
    await world.router.desk.close(chats[0].id, ann)  # by an operator (of any router) between two batches
    reads = reading(world, monkeypatch)
    batch = [world.message(channel, sender=f"cust-{n}", text=f"y{n}") for n in range(3)]
    assert await world.write_batch(batch) == set()
    assert reads == ["get_many", "find_open"]  # the three chats in one read; the closed one's key read: no open chat
    opened = (await stored(world, batch[0])).chat_id
    assert opened != chats[0].id and offers(world, ann)[-1] == (opened, "y0")
    assert [(await stored(world, event)).chat_id for event in batch[1:]] == [chats[1].id, chats[2].id]
    assert new_texts(world, ann, chats[0]) == ["x0"]  # nothing stored in or told about the closed chat after "x0"
    reads.clear()
    assert await world.write_batch([world.message(channel, sender="cust-0", text="z0")]) == set()
    assert reads == ["get_many"] and (await stored(world, batch[0])).chat_id == opened


async def test_a_chat_opened_elsewhere_after_the_known_one_closed_is_the_one_the_batch_uses(world: World) -> None:
    channel, ann, chats = await returning(world)
    assert await world.write_batch([world.message(channel, sender="cust-0", text="a1")]) == set()
    await world.router.desk.close(chats[0].id, ann)
    theirs = await world.write(channel, sender="cust-0", text="back again")  # one by one, as another router does
    assert theirs.id != chats[0].id
    batch = [world.message(channel, sender="cust-0", text="a2")]
    assert await world.write_batch(batch) == set()
    assert (await stored(world, batch[0])).chat_id == theirs.id
    assert new_texts(world, ann, theirs) == ["a2"] and new_texts(world, ann, chats[0]) == ["a1"]


async def test_a_known_chat_is_told_about_as_it_is_now_not_as_it_was_when_first_read(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [5, 5])
    chat = await world.write(channel, sender="cust-0", text="first")
    assert set(chat.offered_to) == {ann.id, bob.id}
    assert await world.write_batch([world.message(channel, sender="cust-0", text="m1")]) == set()
    await world.router.desk.accept(chat.id, await world.fresh(bob))  # between two batches
    assert await world.write_batch([world.message(channel, sender="cust-0", text="m2")]) == set()
    assert new_texts(world, ann, chat) == ["m1"] and new_texts(world, bob, chat) == ["m1", "m2"]
