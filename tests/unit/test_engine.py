"""The routing engine's behaviours, through the desk and the inbox as operators and customers use them: to_all's
first accept wins; to_available's capacity, fairness and FIFO waiting line; offer timeouts and going offline;
transfer and decline; the completion timeout; who sees what. Written once: tests/unit runs them on the in-memory
fakes, tests/integration/test_engine_on_mongo.py on the MongoDB repositories, so the fakes cannot drift."""

import pytest

from omni_router.domain.errors import Conflict, Invalid, NotFound
from omni_router.domain.model import Operator
from omni_router.service_layer.sweeps import sweep_completion
from tests.support.world import OFFER_TIMEOUT_SECONDS, World


async def load(world: World, operator: Operator) -> int:
    return (await world.fresh(operator)).load


# to_all ---------------------------------------------------------------------------------------------------------


async def test_to_all_offers_every_online_operator_and_the_first_accept_wins(world: World) -> None:
    _, channel, (ann, bob, cid) = await world.team("to_all", [5, 5, 5])
    await world.router.desk.set_status(cid, "offline")
    chat = await world.write(channel, text="where is my order?")
    assert chat.status == "new" and sorted(chat.offered_to) == sorted([ann.id, bob.id]) and not chat.waiting
    [offered] = world.told(ann)
    assert offered.event == "chat.offered" and offered.chat_id == chat.id
    assert offered.data["chat"]["id"] == chat.id and offered.data["message"]["text"] == "where is my order?"

    taken = await world.router.desk.accept(chat.id, await world.fresh(bob))
    assert taken.status == "assigned" and taken.operator_id == bob.id and taken.offered_to == (bob.id,)
    with pytest.raises(Conflict) as late:
        await world.router.desk.accept(chat.id, await world.fresh(ann))
    assert late.value.code == "chat_taken"
    with pytest.raises(NotFound):  # never offered to cid: the chat does not exist for them
        await world.router.desk.accept(chat.id, await world.fresh(cid))
    assert world.events_about(chat, ann) == [("chat.offered", None), ("chat.revoked", "taken")]
    assert world.events_about(chat, bob) == [("chat.offered", None), ("chat.assigned", "accepted")]
    assert world.told(cid) == []
    assert await load(world, bob) == 1 and await load(world, ann) == 0
    again = await world.router.desk.accept(chat.id, await world.fresh(bob))  # accepting again is harmless
    assert (again.operator_id, again.offer_version) == (bob.id, taken.offer_version)

    await world.write(channel, text="any news?")
    assert world.events_about(chat, bob)[-1] == ("message.new", None)
    assert world.told(bob)[-1].data["message"]["text"] == "any news?"
    assert world.events_about(chat, ann)[-1] == ("chat.revoked", "taken")


async def test_to_all_offers_open_chats_to_an_operator_coming_online(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [5, 5])
    await world.router.desk.set_status(bob, "offline")
    chat = await world.write(channel)
    assert chat.offered_to == (ann.id,)
    await world.router.desk.set_status(await world.fresh(bob), "online")
    assert sorted((await world.chat(chat.id)).offered_to) == sorted([ann.id, bob.id])
    assert world.events_about(chat, bob) == [("chat.offered", None)]
    assert world.events_about(chat, ann) == [("chat.offered", None)]  # kept, not offered twice


async def test_a_chat_nobody_is_online_for_waits_and_is_offered_when_someone_comes(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    await world.router.desk.set_status(ann, "offline")
    chat = await world.write(channel)
    assert chat.waiting and chat.waiting_in == chat.queue_id and chat.offered_to == ()
    await world.router.desk.set_status(await world.fresh(ann), "online")
    chat = await world.chat(chat.id)
    assert chat.offered_to == (ann.id,) and not chat.waiting and chat.waiting_in is None


# to_available ---------------------------------------------------------------------------------------------------


async def test_to_available_fills_capacity_and_the_waiting_line_is_served_in_arrival_order(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_available", [1, 2])
    first = await world.write(channel, "c1")
    assert first.offered_to == (ann.id,) and first.reserved_for == ann.id  # fewest chats; ties to who waited longest
    second, third = await world.write(channel, "c2"), await world.write(channel, "c3")
    assert second.offered_to == third.offered_to == (bob.id,)
    assert (await load(world, ann), await load(world, bob)) == (1, 2)
    fourth, fifth = await world.write(channel, "c4"), await world.write(channel, "c5")
    assert fourth.waiting and fifth.waiting and fourth.offered_to == fifth.offered_to == ()

    held = await world.router.desk.accept(first.id, await world.fresh(ann))
    assert held.reserved_for is None and await load(world, ann) == 1  # the offer's unit is the chat's unit
    with pytest.raises(NotFound):  # offered to bob: not ann's to see
        await world.router.desk.accept(second.id, await world.fresh(ann))
    await world.router.desk.close(first.id, await world.fresh(ann))
    assert (await world.chat(fourth.id)).offered_to == (ann.id,)  # the oldest waiting chat first
    assert (await world.chat(fifth.id)).waiting
    assert world.events_about(first, ann) == [
        ("chat.offered", None),
        ("chat.assigned", "accepted"),
        ("chat.closed", "closed_by_operator"),
    ]


async def test_to_available_prefers_the_fewest_chats_then_the_longest_idle(world: World) -> None:
    _, channel, operators = await world.team("to_available", [5, 5, 5])
    chats = [await world.write(channel, f"c{n}") for n in range(4)]
    assert [c.offered_to for c in chats] == [(operators[n % 3].id,) for n in range(4)]
    assert [await load(world, op) for op in operators] == [2, 1, 1]


async def test_capacity_is_a_hard_limit_for_accepting_under_every_rule(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [1])
    first, second = await world.write(channel, "c1"), await world.write(channel, "c2")
    await world.router.desk.accept(first.id, await world.fresh(ann))
    with pytest.raises(Conflict) as full:
        await world.router.desk.accept(second.id, await world.fresh(ann))
    assert full.value.code == "at_capacity" and await load(world, ann) == 1


async def test_racing_claims_never_overfill_an_operator(world: World) -> None:
    import asyncio

    from omni_router.domain.capacity import Claim

    ann = await world.operator("ann", max_chats=3)
    claims = await asyncio.gather(*(world.router.capacity.claim(ann.id, f"chat-{n}") for n in range(12)))
    assert claims.count(Claim.TAKEN) == 3 and claims.count(Claim.REFUSED) == 9
    assert await world.router.capacity.claim(ann.id, "chat-0") in (Claim.HELD, Claim.REFUSED)
    held = (await world.fresh(ann)).holds[0]
    assert await world.router.capacity.claim(ann.id, held) is Claim.HELD
    assert await world.router.capacity.release(ann.id, held) and not await world.router.capacity.release(ann.id, held)
    assert await world.router.capacity.claim(ann.id, "late", expected_load=1) is Claim.REFUSED
    assert await world.router.capacity.claim(ann.id, "late", expected_load=2) is Claim.TAKEN
    assert await load(world, ann) == 3


# Offer timeouts and going offline ---------------------------------------------------------------------------------


async def test_an_unanswered_offer_moves_on_after_the_queues_timeout(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_available", [1, 1], offer_timeout_seconds=30)
    chat = await world.write(channel)
    assert chat.offered_to == (ann.id,)
    await world.later(29)
    assert (await world.chat(chat.id)).offered_to == (ann.id,)
    await world.later(2)
    moved = await world.chat(chat.id)
    assert moved.offered_to == (bob.id,) and moved.reserved_for == bob.id
    assert world.events_about(chat, ann) == [("chat.offered", None), ("chat.revoked", "offer_timeout")]
    assert (await load(world, ann), await load(world, bob)) == (0, 1)
    await world.later(31)  # and back: the other operator first, the same one again only if nobody else can
    assert (await world.chat(chat.id)).offered_to == (ann.id,)


async def test_an_offer_nobody_else_can_take_is_made_again_to_the_same_operator(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    await world.later(OFFER_TIMEOUT_SECONDS + 1)  # the default timeout
    assert (await world.chat(chat.id)).offered_to == (ann.id,)
    assert world.events_about(chat, ann) == [("chat.offered", None), ("chat.offered", None)]


async def test_going_offline_moves_offers_on_and_keeps_or_returns_chats_as_the_queue_says(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_available", [2, 2], on_operator_offline="return")
    kept_queue, kept_channel, _ = await world.team("to_available", [])
    first, second = await world.write(channel, "c1"), await world.write(channel, "c2")
    assert first.offered_to == (ann.id,) and second.offered_to == (bob.id,)
    await world.router.desk.accept(first.id, await world.fresh(ann))
    await world.router.desk.set_status(await world.fresh(bob), "offline")
    assert (await world.chat(second.id)).offered_to == (ann.id,)  # the pending offer moved on
    assert world.events_about(second, bob) == [("chat.offered", None), ("chat.revoked", "operator_offline")]
    await world.router.desk.accept(second.id, await world.fresh(ann))
    await world.router.desk.set_status(await world.fresh(bob), "online")
    await world.router.desk.set_status(await world.fresh(ann), "offline")  # the queue says: return
    returned = await world.chat(first.id)
    assert returned.status == "new" and returned.operator_id is None and returned.offered_to == (bob.id,)
    assert world.events_about(first, ann)[-1] == ("chat.revoked", "operator_offline")
    assert await load(world, ann) == 0
    assert kept_queue.on_operator_offline == "keep" and kept_channel.queue_id == kept_queue.id


async def test_a_kept_chat_stays_with_its_operator_offline(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [2, 2])
    chat = await world.write(channel)
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    await world.router.desk.set_status(await world.fresh(ann), "offline")
    kept = await world.chat(chat.id)
    assert kept.status == "assigned" and kept.operator_id == ann.id and await load(world, ann) == 1
    assert world.told(bob)[-1].event == "chat.revoked"


async def test_offers_left_with_an_operator_who_went_offline_unseen_are_moved_by_the_sweep(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_available", [1, 1])
    chat = await world.write(channel)
    await world.router.ports.operators.set_status(ann.id, "offline")  # a crash, or an edit nobody routed after
    await world.later(1)
    assert (await world.chat(chat.id)).offered_to == (bob.id,)


# Transfer and decline ---------------------------------------------------------------------------------------------


async def test_a_declined_offer_moves_on_and_is_never_made_to_that_operator_again(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_available", [1, 1])
    chat = await world.write(channel)
    declined = await world.router.desk.decline(chat.id, await world.fresh(ann))
    assert declined.offered_to == (bob.id,) and declined.declined_by == (ann.id,)
    assert world.events_about(chat, ann) == [("chat.offered", None), ("chat.revoked", "declined")]
    await world.router.desk.decline(chat.id, await world.fresh(bob))
    nobody = await world.chat(chat.id)
    assert nobody.offered_to == () and nobody.waiting
    assert (await load(world, ann), await load(world, bob)) == (0, 0)
    await world.later(OFFER_TIMEOUT_SECONDS * 3)
    assert (await world.chat(chat.id)).offered_to == ()
    with pytest.raises(NotFound):
        await world.router.desk.decline(chat.id, await world.fresh(ann))


async def test_decline_is_only_for_an_offer(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    with pytest.raises(Conflict) as held:
        await world.router.desk.decline(chat.id, await world.fresh(ann))
    assert held.value.code == "not_offered"


async def test_a_transfer_hands_the_chat_to_an_operator_or_back_to_a_queue(world: World) -> None:
    queue, channel, (ann, bob) = await world.team("to_all", [1, 1])
    other_queue, _, (cid,) = await world.team("to_available", [1])
    chat = await world.write(channel)
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    moved = await world.router.desk.transfer(chat.id, await world.fresh(ann), bob.id, None)
    assert moved.operator_id == bob.id and moved.status == "assigned"
    assert world.events_about(chat, ann)[-1] == ("chat.revoked", "transferred")
    assert world.events_about(chat, bob)[-1] == ("chat.assigned", "transferred")
    assert (await load(world, ann), await load(world, bob)) == (0, 1)
    with pytest.raises(Conflict) as same:
        await world.router.desk.transfer(chat.id, await world.fresh(bob), bob.id, None)
    assert same.value.code == "not_allowed"
    with pytest.raises(NotFound):  # no longer ann's chat
        await world.router.desk.transfer(chat.id, await world.fresh(ann), ann.id, None)

    requeued = await world.router.desk.transfer(chat.id, await world.fresh(bob), None, other_queue.id)
    assert requeued.queue_id == other_queue.id and requeued.offered_to == (cid.id,) and requeued.status == "new"
    assert world.events_about(chat, bob)[-1] == ("chat.revoked", "transferred")
    assert await load(world, bob) == 0 and queue.id != other_queue.id


async def test_a_transfer_to_someone_who_cannot_take_the_chat_is_refused(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [1, 1])
    chat = await world.write(channel)
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    await world.router.desk.set_status(await world.fresh(bob), "offline")
    with pytest.raises(Conflict) as refused:
        await world.router.desk.transfer(chat.id, await world.fresh(ann), bob.id, None)
    assert refused.value.code == "operator_unavailable"
    with pytest.raises(Invalid):
        await world.router.desk.transfer(chat.id, await world.fresh(ann), "nobody", None)
    with pytest.raises(Invalid):
        await world.router.desk.transfer(chat.id, await world.fresh(ann), None, "no-queue")
    assert (await world.chat(chat.id)).operator_id == ann.id


# Completion timeout ---------------------------------------------------------------------------------------------


async def test_a_chat_without_a_message_for_the_queues_timeout_is_closed(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5], completion_timeout_minutes=1)
    chat = await world.write(channel)
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    world.clock.advance(40)
    await world.reply(chat, ann)  # a message either way starts the timeout again
    world.clock.advance(40)
    assert await world.router.engine.close_due() == 0
    world.clock.advance(21)
    await sweep_completion(world.router.engine, world.router.capacity, world.router.courtesy, 15)
    closed = await world.chat(chat.id)
    assert closed.status == "closed" and closed.close_reason == "completion_timeout" and closed.closed_by is None
    assert world.events_about(chat, ann)[-1] == ("chat.closed", "completion_timeout")
    assert await load(world, ann) == 0
    again = await world.write(channel)
    assert again.id != chat.id and again.status == "new"  # the customer's next message opens a new chat


async def test_a_due_time_follows_a_changed_completion_timeout(world: World) -> None:
    queue, channel, _ = await world.team("to_all", [5], completion_timeout_minutes=1)
    chat = await world.write(channel)
    await world.router.admin.change("queues", queue.id, {"completion_timeout_minutes": 5})
    world.clock.advance(61)
    assert await world.router.engine.close_due() == 0
    assert (await world.chat(chat.id)).status == "new"
    await world.router.admin.change("queues", queue.id, {"completion_timeout_minutes": None})
    world.clock.advance(300)
    assert await world.router.engine.close_due() == 0
    assert (await world.chat(chat.id)).due_at is None


# Who sees what ----------------------------------------------------------------------------------------------------


async def test_an_operator_sees_only_chats_offered_to_or_held_by_them_and_a_supervisor_all(world: World) -> None:
    _, channel, (ann, _bob) = await world.team("to_available", [1, 1])
    boss = await world.operator("boss", role="supervisor", online=False)
    first, second = await world.write(channel, "c1"), await world.write(channel, "c2")
    desk = world.router.desk
    mine = await desk.chats(await world.fresh(ann), None, None, 50)
    assert [c.id for c, _ in mine.items] == [first.id] and mine.items[0][1] == 1 and mine.next_cursor is None
    everything = await desk.chats(boss, None, None, 1)
    assert [c.id for c, _ in everything.items] == [second.id] and everything.next_cursor == second.id
    assert [c.id for c, _ in (await desk.chats(boss, None, everything.next_cursor, 50)).items] == [first.id]
    with pytest.raises(NotFound):
        await desk.chat(second.id, await world.fresh(ann))
    assert (await desk.chat(second.id, boss))[0].id == second.id
    assert await desk.actions(first.id, await world.fresh(ann)) == ["accept", "decline", "read", "send", "close"]
    assert await desk.actions(first.id, boss) == ["accept", "read", "send", "close", "transfer"]
    assert await desk.unread(await world.fresh(ann)) == {first.id: 1}
    assert await desk.mark_read(first.id, await world.fresh(ann)) == 1
    assert await desk.unread(await world.fresh(ann)) == {}
    await desk.close(first.id, boss)
    assert [c.id for c, _ in (await desk.chats(boss, "closed", None, 50)).items] == [first.id]
    assert [c.id for c, _ in (await desk.chats(await world.fresh(ann), None, None, 50)).items] == []
    with pytest.raises(Conflict) as closed:
        await desk.close(first.id, boss)
    assert closed.value.code == "chat_closed"


async def test_a_conversation_pages_back_in_the_order_written(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel, text="m0")
    for n in range(1, 5):
        await world.write(channel, text=f"m{n}")
    page = await world.router.desk.conversation(chat, None, 3)
    assert [m.text for m in page.items] == ["m2", "m3", "m4"] and page.next_cursor == page.items[0].id
    older = await world.router.desk.conversation(chat, page.next_cursor, 3)
    assert [m.text for m in older.items] == ["m0", "m1"] and older.next_cursor is None
    assert (await world.chat(chat.id)).offered_to == (ann.id,)
