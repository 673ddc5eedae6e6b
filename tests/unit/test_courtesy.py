"""What the router tells customers itself, and what it keeps for reports, on the world of use cases (the fakes here,
MongoDB in tests/integration/test_engine_on_mongo.py): the greeting and the out-of-hours answer once, chats opened
out of hours offered at the next opening, the CSAT question at closing and the rating it gets, and the counts and
times a chat keeps as messages go in and out."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from omni_contracts import MessageOutgoing
from omni_router.domain import changes
from omni_router.domain.changes import CsatAsk
from omni_router.domain.model import Queue
from tests.support.world import World

# The fake clock starts on Friday 2027-01-15 at 08:00 UTC.
OPEN_NOW = {"timezone": "UTC", "weekly": {"fri": [["08:00", "09:00"]]}}
OPENS_IN_TWO_HOURS = {"timezone": "UTC", "weekly": {"fri": [["10:00", "11:00"]]}}
CSAT = {"enabled": True, "question": "Rate us 1-5"}


def said(world: World, text: str) -> list[MessageOutgoing]:
    """What the router handed the dispatcher with this text."""
    return [e for e in world.events.published if isinstance(e, MessageOutgoing) and e.text == text]


async def test_a_new_chat_inside_hours_greets_its_customer_once(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5], business_hours=OPEN_NOW, greeting_text="Hi, how can we help?")
    chat = await world.write(channel, message_id="m-1")
    await world.write(channel, message_id="m-1")  # delivered again
    await world.write(channel, text="are you there?")
    [greeting] = said(world, "Hi, how can we help?")
    assert greeting.chat_id == chat.id and greeting.recipient == "cust-1"
    assert (await world.chat(chat.id)).offered_to == (ann.id,) and (await world.chat(chat.id)).welcome is None
    texts = [m.text for m in (await world.router.desk.conversation(chat, None, 10)).items]
    assert texts.count("Hi, how can we help?") == 1
    assert await world.router.ports.messages.get(greeting.message_id) is not None


async def test_a_greeting_repeated_after_a_crash_is_stored_and_sent_once(world: World) -> None:
    _, channel, _ = await world.team("to_all", [5], greeting_text="Hello")
    chat = await world.write(channel, message_id="m-1")
    [greeting] = said(world, "Hello")
    # As if the router had died after storing the greeting and before clearing the chat's `welcome`: a redelivery
    # says it again under the same id, which stores and publishes nothing twice.
    owed = replace(chat, welcome={"id": greeting.message_id, "text": "Hello"})
    contact = await world.router.ports.contacts.get(chat.contact_id)
    assert contact is not None
    await world.router.courtesy.welcome(owed, contact)
    assert len(said(world, "Hello")) == 1


async def test_a_chat_out_of_hours_is_answered_and_offered_at_the_next_opening(world: World) -> None:
    _, channel, (ann,) = await world.team(
        "to_available", [5], business_hours=OPENS_IN_TWO_HOURS, greeting_text="Hi", out_of_hours_text="Closed now"
    )
    chat = await world.write(channel)
    assert len(said(world, "Closed now")) == 1 and said(world, "Hi") == []
    waiting = await world.chat(chat.id)
    assert waiting.waiting and waiting.offered_to == () and world.told(ann, "chat.offered") == []
    assert waiting.not_before == datetime(2027, 1, 15, 10, 0, tzinfo=UTC).timestamp()
    later = await world.write(channel, sender="cust-2")  # inside the line behind it, still closed
    await world.later(7199)
    assert world.told(ann, "chat.offered") == []
    await world.later(1)
    offered = [n.chat_id for n in world.told(ann, "chat.offered")]
    assert offered == [chat.id, later.id]  # in arrival order, at the opening


async def test_closing_asks_the_csat_question_and_a_digit_rates_the_chat(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5], csat=CSAT)
    chat = await world.write(channel)
    await world.router.desk.close(chat.id, await world.fresh(ann))
    [question] = said(world, "Rate us 1-5")
    assert question.chat_id == chat.id
    told = len(world.told(ann))
    rated = await world.write(channel, text="4 - quick and kind", message_id="r-1")
    assert rated.id == chat.id and rated.status == "closed"
    assert rated.rating is not None and (rated.rating["score"], rated.rating["comment"]) == (4, "quick and kind")
    await world.write(channel, text="4 - quick and kind", message_id="r-1")  # delivered again
    assert len(world.told(ann)) == told and await world.router.ports.chats.find_open(rated.csat_key or "x") is None
    # The question is answered: the next message, digits or not, opens a new chat.
    again = await world.write(channel, text="5")
    assert again.id != chat.id and again.is_open and again.rating is None


async def test_anything_but_a_rating_or_a_late_one_opens_a_new_chat(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5], csat=CSAT, completion_timeout_minutes=1)
    chat = await world.write(channel)
    world.clock.advance(61)
    assert await world.router.engine.close_due() == 1  # the completion timeout asks too
    assert len(said(world, "Rate us 1-5")) == 1
    other = await world.write(channel, text="I have another question")
    assert other.id != chat.id and other.is_open
    await world.router.desk.close(other.id, await world.fresh(ann))
    world.clock.advance(24 * 3600 + 1)
    late = await world.write(channel, text="5")
    assert late.id != other.id and late.is_open and (await world.chat(other.id)).rating is None


async def test_no_csat_no_question(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    await world.router.desk.close(chat.id, await world.fresh(ann))
    assert [e for e in world.events.published if isinstance(e, MessageOutgoing)] == []
    assert (await world.write(channel, text="5")).id != chat.id


async def test_a_chat_keeps_its_counts_and_times_for_reports(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5], greeting_text="Hi")
    chat = await world.write(channel)
    await world.write(channel, text="more")
    world.clock.advance(30)
    await world.reply(chat, ann)
    await world.reply(chat, ann, "and more")
    closed = await world.router.desk.close(chat.id, await world.fresh(ann))
    kept = await world.chat(closed.id)
    assert (kept.messages_in, kept.messages_out) == (2, 2)  # the greeting is not the team's reply
    assert kept.first_response_seconds is not None and 30 <= kept.first_response_seconds < 31
    assert kept.first_response_at is not None and kept.closed_ts is not None
    assert kept.resolution_seconds is not None and kept.resolution_seconds >= 30


def _hours(**more: Any) -> dict[str, Any]:
    return {"timezone": "Europe/Berlin", "weekly": {"mon": [["09:00", "18:00"]]}, **more}


async def test_the_admin_sets_business_hours_and_csat_on_a_queue(world: World) -> None:
    queue, _, _ = await world.team("to_all", [5])
    changed = await world.router.admin.change(
        "queues", queue.id, {"business_hours": _hours(holidays=["2026-12-25"]), "csat": CSAT}
    )
    assert isinstance(changed, Queue)
    assert changed.business_hours == _hours(holidays=["2026-12-25"]) and changed.csat == CSAT


async def test_a_csat_question_a_crash_left_unsent_is_sent_by_the_sweep_once(world: World) -> None:
    _, channel, _ = await world.team("to_all", [5], csat=CSAT)
    chat = await world.write(channel)
    # The closing's write alone, as if the router had died before storing its question.
    ask = CsatAsk(world.clock.new_id(), world.clock.time() + 24 * 3600)
    update = changes.close(chat, by=None, reason="test", at=world.clock.now(), csat=ask, new_id=world.clock.new_id)
    assert await world.router.ports.chats.change(update) is not None
    assert said(world, "Rate us 1-5") == []
    assert await world.router.courtesy.ask_due(older_than_seconds=5) == 0  # not before its grace
    world.clock.advance(6)
    assert await world.router.courtesy.ask_due(older_than_seconds=5) == 1
    [question] = said(world, "Rate us 1-5")
    assert question.message_id == ask.message_id and (await world.chat(chat.id)).csat_ask_at is None
    assert await world.router.courtesy.ask_due(older_than_seconds=5) == 0
    assert (await world.write(channel, text="3")).id == chat.id  # and it is answered as any question


async def test_a_message_redelivered_after_its_chat_closed_is_no_rating(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5], csat=CSAT)
    chat = await world.write(channel, text="5 items missing", message_id="m-1")
    await world.router.desk.close(chat.id, await world.fresh(ann))
    stored = await world.router.ports.messages.incoming(f"{channel.id}:m-1")
    assert stored is not None
    # Delivered again as if never routed (a crash before the ack): it stays an ordinary message of the closed chat.
    assert not world.router.courtesy.answers_question(await world.chat(chat.id), stored)
    assert (await world.chat(chat.id)).rating is None
