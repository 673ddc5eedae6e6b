"""The operator's workplace on the world: notes, labels, canned responses, another operator's chats, search.
Written once, run on the fakes here and on MongoDB in tests/integration/test_engine_on_mongo.py."""

import pytest
from pydantic import ValidationError

from omni_contracts import ProfileResolved
from omni_router.domain.canned import PersonalResponse, SharedResponse, render
from omni_router.domain.errors import Conflict, Forbidden, Invalid, InvalidBody, NotFound, Unprocessable
from omni_router.domain.labels import LabelSettings
from omni_router.domain.notes import NoteBody
from omni_router.domain.search import query_words, words
from tests.support.world import World

# Notes -------------------------------------------------------------------------------------------------------------


async def test_a_note_sits_in_the_conversation_reaches_the_others_and_never_the_customer(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [5, 5])
    chat = await world.write(channel, text="my parcel is late")
    outsider = await world.operator("carl")
    published_before = list(world.events.published)

    note = await world.router.workplace.add_note(chat.id, ann, "customer called twice already")
    assert (note.direction, note.type, note.operator_id) == ("internal", "note", ann.id)
    conversation = (await world.router.desk.conversation(chat, None, 10)).items
    assert [(m.direction, m.type) for m in conversation] == [("incoming", "text"), ("internal", "note")]
    assert world.events.published == published_before  # nothing for the dispatcher
    [told] = world.told(bob, "note.new")
    assert told.chat_id == chat.id and told.data["note"]["text"] == "customer called twice already"
    assert told.data["note"]["author_id"] == ann.id
    assert world.told(ann, "note.new") == [] and world.told(outsider, "note.new") == []
    with pytest.raises(NotFound):
        await world.router.workplace.add_note(chat.id, outsider, "not mine to see")


# Labels ------------------------------------------------------------------------------------------------------------


async def test_labels_are_defined_once_put_on_chats_filtered_and_dropped_with_their_label(world: World) -> None:
    workplace = world.router.workplace
    _, channel, (ann,) = await world.team("to_all", [5])
    billing = await workplace.create_label(LabelSettings(name="billing", color="#FFAA00"))
    await workplace.create_label(LabelSettings(name="vip", color="#0a0"))
    assert billing.color == "#ffaa00"
    with pytest.raises(Conflict):
        await workplace.create_label(LabelSettings(name="billing", color="#000"))
    with pytest.raises(ValidationError, match="color must be"):
        LabelSettings(name="x", color="red; background: url(x)")

    first = await world.write(channel, sender="c1")
    second = await world.write(channel, sender="c2")
    labelled = await workplace.label_chat(first.id, ann, ["vip", "billing", "vip"])
    assert labelled.labels == ("vip", "billing")
    with pytest.raises(Unprocessable) as unknown:
        await workplace.label_chat(second.id, ann, ["billing", "nope", "nada"])
    assert "nope" in unknown.value.detail and "nada" in unknown.value.detail
    assert (await world.chat(second.id)).labels == ()

    page = await workplace.chats(ann, None, None, 10, label="billing")
    assert [c.id for c, _ in page.items] == [first.id]
    with pytest.raises(Unprocessable):
        await workplace.chats(ann, None, None, 10, label="nope")

    await workplace.delete_label(billing.id)
    assert (await world.chat(first.id)).labels == ("vip",)
    assert [label.name for label in await workplace.labels()] == ["vip"]
    with pytest.raises(NotFound):
        await workplace.delete_label(billing.id)


# Canned responses --------------------------------------------------------------------------------------------------


async def test_canned_responses_an_operator_may_use_change_and_fill_for_a_chat(world: World) -> None:
    workplace = world.router.workplace
    queue, channel, (ann, bob) = await world.team("to_all", [5, 5])
    other_queue = await world.queue("to_all", [])
    greeting = await workplace.create_shared(SharedResponse(shortcut="hi", text="Hello {{contact.name}}!"))
    await workplace.create_shared(SharedResponse(shortcut="refund", text="Refunds take 5 days", queue_id=queue.id))
    await workplace.create_shared(SharedResponse(shortcut="other", text="elsewhere", queue_id=other_queue.id))
    mine = await workplace.create_personal(ann, PersonalResponse(shortcut="/sig", text="{{operator.name}} @ {{x.y}}"))
    with pytest.raises(Invalid):
        await workplace.create_shared(SharedResponse(shortcut="bad", text="t", queue_id="no-such-queue"))

    usable = await workplace.usable(ann, "")
    assert sorted((r.shortcut, r.scope) for r in usable) == [("hi", "global"), ("refund", "queue"), ("sig", "personal")]
    assert [r.shortcut for r in await workplace.usable(ann, "REF")] == ["refund"]
    assert [r.shortcut for r in await workplace.usable(ann, "days")] == ["refund"]
    assert "sig" not in [r.shortcut for r in await workplace.usable(bob, "")]

    with pytest.raises(NotFound):
        await workplace.change_personal(bob, mine.id, {"text": "stolen"})
    with pytest.raises(Forbidden):
        await workplace.change_personal(ann, greeting.id, {"text": "mine now"})
    with pytest.raises(InvalidBody):
        await workplace.change_personal(ann, mine.id, {"text": "   "})
    assert (
        await workplace.change_personal(ann, mine.id, {"text": "{{operator.name}} @ {{x.y}} bye"})
    ).shortcut == "sig"
    with pytest.raises(InvalidBody):
        await workplace.change_shared(greeting.id, {"shortcut": "two words"})
    assert (await workplace.shared_one(greeting.id)).shortcut == "hi"  # refused: nothing changed

    chat = await world.write(channel, sender="c1")
    await world.router.updates.apply(ProfileResolved(contact_id=chat.contact_id, name="{{operator.name}} <b>"))
    assert await workplace.rendered(chat.id, ann, greeting.id) == "Hello {{operator.name}} <b>!"
    assert await workplace.rendered(chat.id, ann, mine.id) == "op0 @ {{x.y}} bye"
    with pytest.raises(NotFound):
        await workplace.rendered(chat.id, bob, mine.id)  # not bob's to use
    await workplace.delete_personal(ann, mine.id)
    with pytest.raises(NotFound):
        await workplace.rendered(chat.id, ann, mine.id)


def test_placeholders_are_filled_in_one_pass_and_unknown_ones_stay() -> None:
    values = {"contact.name": "{{channel.name}}", "channel.name": "Shop"}
    assert render("{{ contact.name }} via {{channel.name}} {{channel.id}} {{", values) == (
        "{{channel.name}} via Shop {{channel.id}} {{"
    )


# Another operator's chats ------------------------------------------------------------------------------------------


async def test_supervisors_list_another_operators_chats_and_operators_may_not(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_available", [5, 5])
    boss = await world.operator("boss", role="supervisor")
    first = await world.write(channel, sender="c1")
    second = await world.write(channel, sender="c2")
    holder = ann if ann.id in first.offered_to else bob
    page = await world.router.workplace.chats(boss, None, None, 10, of_operator=holder.id)
    assert first.id in [c.id for c, _ in page.items]
    assert all(holder.id in (c.operator_id, *c.offered_to) for c, _ in page.items)
    assert second.id in [c.id for c, _ in page.items] or second.offered_to != (holder.id,)
    with pytest.raises(Forbidden):
        await world.router.workplace.chats(ann, None, None, 10, of_operator=bob.id)


# Search ------------------------------------------------------------------------------------------------------------


def test_words_are_case_folded_and_the_longest_query_word_is_looked_up_first() -> None:
    assert words("Straße STRASSE, straße!") == ["strasse"]
    assert query_words("my Parcel") == ["parcel", "my"]


async def test_search_finds_messages_and_contacts_only_where_the_operator_may_look(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    _, other_channel, (bob,) = await world.team("to_all", [5])
    boss = await world.operator("boss", role="supervisor")
    mine = await world.write(channel, sender="c1", text="My parcel never arrived")
    theirs = await world.write(other_channel, sender="c2", text="parcel damaged")
    await world.router.updates.apply(ProfileResolved(contact_id=mine.contact_id, name="Ann Parcelle"))
    reply = await world.reply(mine, ann, "Your PARCEL is on its way")
    note = await world.router.workplace.add_note(mine.id, ann, "parcel lost by courier")

    page = await world.router.workplace.search(ann, "parcel", None, 10)
    assert [(h.entry.kind, h.entry.id, h.chat_id) for h in page.items] == [
        ("message", note.id, mine.id),
        ("message", reply.id, mine.id),
        ("message", (await world.router.desk.conversation(mine, None, 10)).items[0].id, mine.id),
    ]
    assert page.items[1].entry.text == "Your PARCEL is on its way" and page.next_cursor is None
    assert [h.entry.kind for h in (await world.router.workplace.search(ann, "parcelle ann", None, 10)).items] == [
        "contact"
    ]
    assert [h.chat_id for h in (await world.router.workplace.search(bob, "parcel", None, 10)).items] == [theirs.id]
    assert (await world.router.workplace.search(ann, "c1", None, 10)).items == []  # the name it had before
    everything = await world.router.workplace.search(boss, "parcel", None, 2)
    assert len(everything.items) == 2 and everything.next_cursor is not None
    rest = await world.router.workplace.search(boss, "parcel", everything.next_cursor, 10)
    assert len(everything.items) + len(rest.items) == 4 and rest.next_cursor is None
    assert (await world.router.workplace.search(ann, "parcel never", None, 10)).items[0].chat_id == mine.id
    with pytest.raises(Invalid):
        await world.router.workplace.search(ann, "  !! ", None, 10)


async def test_a_note_written_while_the_broker_is_down_is_kept_and_streamed(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [5, 5])
    chat = await world.write(channel)
    world.operator_queues.down = True
    note = await world.router.workplace.add_note(chat.id, ann, "still here")
    assert [m.id for m in (await world.router.desk.conversation(chat, None, 10)).items][-1] == note.id
    streamed = await world.router.ports.notification_log.after(bob.id, "", 10)
    assert [n.event for n in streamed][-1] == "note.new"  # the live stream shows it all the same
    with pytest.raises(ValidationError, match="a note needs text"):
        NoteBody(text="  \n ")


async def test_the_admin_moves_a_canned_response_to_a_queue_lists_by_queue_and_deletes_it(world: World) -> None:
    workplace = world.router.workplace
    queue, _, (ann,) = await world.team("to_all", [5])
    response = await workplace.create_shared(SharedResponse(shortcut="hours", text="We open at nine"))
    moved = await workplace.change_shared(response.id, {"queue_id": queue.id, "text": "We open at 9"})
    assert (moved.scope, moved.text) == ("queue", "We open at 9")
    assert [r.id for r in await workplace.shared(queue.id)] == [response.id]
    assert await workplace.shared("another-queue") == []
    personal = await workplace.create_personal(ann, PersonalResponse(shortcut="mine", text="Mine"))
    with pytest.raises(NotFound):
        await workplace.shared_one(personal.id)  # the admin API manages the shared ones only
    await workplace.delete_shared(response.id)
    assert [r.id for r in await workplace.usable(ann, "")] == [personal.id]
