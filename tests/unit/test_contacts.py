"""Contacts (issue 13 item 4) as the router's use cases keep them: the card and who may see it, edits, the contact's
chats across channels and earlier conversations, and merges that survive being repeated or interrupted. Written once,
run on the fakes here and on MongoDB in tests/integration/test_engine_on_mongo.py."""

import pytest

from omni_contracts import MessageSent, ProfileResolved, RouterUpdate
from omni_router.domain.contacts import check_attributes, merged
from omni_router.domain.errors import Invalid, NotFound
from omni_router.domain.model import Contact
from tests.support.world import World
from tests.unit.test_batches import stored


async def test_the_card_is_for_whoever_sees_a_chat_of_the_contact_and_edits_rename_its_chats(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    stranger = await world.operator("carl")
    chat = await world.write(channel, sender="cust-7")
    cards = world.router.contacts
    card = await cards.card(chat.contact_id, await world.fresh(ann))
    assert card["identities"] == [{"channel_id": channel.id, "provider": "acme", "external_id": "cust-7"}]
    assert card["attributes"] == {}
    with pytest.raises(NotFound):
        await cards.card(chat.contact_id, stranger)
    with pytest.raises(NotFound):
        await cards.edit(chat.contact_id, stranger, "Mallory", None)
    changed = await cards.edit(chat.contact_id, await world.fresh(ann), "Ann Example", {"email": "ann@example.com"})
    assert (changed["name"], changed["attributes"]) == ("Ann Example", {"email": "ann@example.com"})
    assert (await world.chat(chat.id)).contact_name == "Ann Example"
    renamed_only = await cards.edit(chat.contact_id, await world.fresh(ann), "Ann E.", None)
    assert renamed_only["attributes"] == {"email": "ann@example.com"}  # what a change leaves out stays
    boss = await world.operator("boss", role="supervisor")
    assert (await cards.card(chat.contact_id, boss))["name"] == "Ann E."


@pytest.mark.parametrize(
    "attributes",
    [{"email": 1}, {"nested": {"a": "b"}}, {"": "x"}, {"k": "v" * 1001}, {f"k{n}": "v" for n in range(51)}],
)
def test_attributes_are_a_flat_object_of_strings(attributes: dict[str, object]) -> None:
    with pytest.raises(Invalid):
        check_attributes(attributes)


async def test_earlier_chats_are_readable_by_whoever_sees_an_open_chat_of_the_contact(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    bob = await world.operator("bob")
    earlier = await world.write(channel, text="first time")
    await world.router.desk.accept(earlier.id, await world.fresh(ann))
    await world.router.desk.close(earlier.id, await world.fresh(ann))
    with pytest.raises(NotFound):
        await world.router.contacts.chats(earlier.contact_id, await world.fresh(bob))
    now = await world.write(channel, text="me again")
    assert now.id != earlier.id and now.contact_id == earlier.contact_id
    await world.router.desk.accept(now.id, await world.fresh(ann))
    await world.router.desk.transfer(now.id, await world.fresh(ann), bob.id, None)
    listed = await world.router.contacts.chats(now.contact_id, await world.fresh(bob))
    assert [chat.id for chat, _ in listed] == [now.id, earlier.id]  # newest first
    chat, _ = await world.router.desk.chat(earlier.id, await world.fresh(bob))
    page = await world.router.desk.conversation(chat, None, 10)
    assert [m.text for m in page.items] == ["first time"]
    with pytest.raises(NotFound):  # reading is all: no acting on it
        await world.router.desk.close(earlier.id, await world.fresh(bob))


async def test_a_merge_moves_identities_chats_and_attributes_and_the_merged_contact_is_gone(world: World) -> None:
    queue, web, (ann,) = await world.team("to_all", [5])
    whatsapp = await world.channel(queue, source="5566", provider="whatsapp")
    on_web = await world.write(web, sender="cust-1")
    on_whatsapp = await world.write(whatsapp, sender="4917612345678")
    cards = world.router.contacts
    await cards.edit(on_web.contact_id, await world.fresh(ann), None, {"crm_id": "C-1", "email": "web@example.com"})
    await cards.edit(on_whatsapp.contact_id, await world.fresh(ann), None, {"phone": "+49176", "email": "wa@x.de"})

    kept = await cards.merge(on_web.contact_id, on_whatsapp.contact_id)
    assert kept["identities"] == [
        {"channel_id": web.id, "provider": "acme", "external_id": "cust-1"},
        {"channel_id": whatsapp.id, "provider": "whatsapp", "external_id": "4917612345678"},
    ]
    assert kept["attributes"] == {"crm_id": "C-1", "email": "web@example.com", "phone": "+49176"}
    with pytest.raises(NotFound):
        await cards.card(on_whatsapp.contact_id, await world.fresh(ann))
    assert (await world.chat(on_whatsapp.id)).contact_id == on_web.contact_id
    listed = await cards.chats(on_web.contact_id, await world.fresh(ann))
    assert [chat.id for chat, _ in listed] == [on_whatsapp.id, on_web.id]
    # The WhatsApp sender finds the kept contact and its open chat; replies there still go to its WhatsApp id.
    again = await world.write(whatsapp, sender="4917612345678", text="still me")
    assert (again.id, again.contact_id) == (on_whatsapp.id, on_web.contact_id)
    reply = await world.reply(again, ann, "hello on WhatsApp")
    assert reply.recipient == "4917612345678"
    assert await cards.merge(on_web.contact_id, on_whatsapp.contact_id) == kept  # repeated: the same answer
    with pytest.raises(NotFound):  # the merged contact cannot be kept in turn
        await cards.merge(on_whatsapp.contact_id, on_web.contact_id)
    with pytest.raises(Invalid):
        await cards.merge(on_web.contact_id, on_web.contact_id)


async def test_a_router_that_kept_merged_contacts_stores_their_senders_messages_on_the_contacts_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router's batches keep the contacts they found (KnownContacts); a merge, here or in another router, makes a
    sender's contact the one kept and moves its chats there. One WhatsApp customer's chat is open, the other's closed:
    after the merges their messages go to the contacts kept (the open chat moved, a new chat), none to a merged one;
    a message to an open chat reads no contact."""
    queue, web, (ann,) = await world.team("to_all", [5])
    whatsapp = await world.channel(queue, source="5566", provider="whatsapp")
    first = [
        world.message(web, sender="cust-1", text="web 1"),
        world.message(whatsapp, sender="4917600000001", text="wa 1"),
        world.message(web, sender="cust-2", text="web 2"),
        world.message(whatsapp, sender="4917600000002", text="wa 2"),
    ]
    assert await world.write_batch(first) == set()
    web_1, wa_1, web_2, wa_2 = [await world.chat((await stored(world, event)).chat_id) for event in first]
    await world.router.desk.accept(wa_2.id, await world.fresh(ann))
    await world.router.desk.close(wa_2.id, await world.fresh(ann))
    await world.router.contacts.merge(web_1.contact_id, wa_1.contact_id)
    await world.router.contacts.merge(web_2.contact_id, wa_2.contact_id)

    contacts = world.router.ports.contacts
    find = contacts.find
    reads: list[str] = []

    async def counted(key: str) -> Contact | None:
        reads.append(key)
        return await find(key)

    monkeypatch.setattr(contacts, "find", counted)
    again = [
        world.message(whatsapp, sender="4917600000001", text="me again"),
        world.message(whatsapp, sender="4917600000002", text="me again"),
    ]
    assert await world.write_batch(again) == set()
    again_1, again_2 = [await world.chat((await stored(world, event)).chat_id) for event in again]
    assert (again_1.id, again_1.contact_id) == (wa_1.id, web_1.contact_id)  # its open chat, moved
    assert again_2.id != wa_2.id and again_2.contact_id == web_2.contact_id and again_2.is_open
    chats = world.router.ports.chats
    assert await chats.of_contact(wa_1.contact_id) == [] and await chats.of_contact(wa_2.contact_id) == []
    assert len(reads) == 2  # each sender's contact read again, once
    assert await world.write_batch([world.message(web, sender="cust-1", text="web again")]) == set()
    assert len(reads) == 2  # to an open chat: the kept contact is trusted


async def test_a_merge_interrupted_after_its_commit_is_completed_by_its_repeat(world: World) -> None:
    queue, web, (ann,) = await world.team("to_all", [5])
    whatsapp = await world.channel(queue, source="5566", provider="whatsapp")
    into = await world.write(web, sender="cust-1")
    source = await world.write(whatsapp, sender="4917612345678")
    contacts = world.router.ports.contacts
    a, b = await contacts.get(into.contact_id), await contacts.get(source.contact_id)
    assert a is not None and b is not None
    # The first two steps, then the process dies: the chats have not moved.
    await contacts.absorb(merged(a, b))
    await contacts.mark_merged(b.id, a.id)
    assert (await world.chat(source.id)).contact_id == b.id
    listed = await world.router.contacts.chats(a.id, await world.fresh(ann))  # still found meanwhile
    assert {chat.id for chat, _ in listed} == {into.id, source.id}
    again = await world.write(whatsapp, sender="4917612345678", text="new message")
    assert again.contact_id == a.id  # the sender finds the kept contact (a chat of its own, until the repeat)
    await world.router.contacts.merge(a.id, b.id)
    assert (await world.chat(source.id)).contact_id == a.id
    listed = await world.router.contacts.chats(a.id, await world.fresh(ann))
    assert {chat.id for chat, _ in listed} == {into.id, source.id, again.id}
    with pytest.raises(NotFound):
        await world.router.contacts.card(b.id, await world.fresh(ann))


async def test_merging_a_contact_that_had_others_merged_into_it_takes_them_along(world: World) -> None:
    queue, web, _ = await world.team("to_all", [5])
    whatsapp = await world.channel(queue, source="5566", provider="whatsapp")
    twilio = await world.channel(queue, source="+1415", provider="twilio")
    first = await world.write(web, sender="c")
    second = await world.write(whatsapp, sender="49")
    third = await world.write(twilio, sender="+49")
    cards = world.router.contacts
    await cards.merge(second.contact_id, third.contact_id)
    kept = await cards.merge(first.contact_id, second.contact_id)
    identities = kept["identities"]
    assert isinstance(identities, list) and [i["external_id"] for i in identities] == ["c", "49", "+49"]
    assert (await world.write(twilio, sender="+49")).contact_id == first.contact_id
    assert (await world.chat(third.id)).contact_id == first.contact_id


async def test_a_name_an_operator_gave_stays_when_the_profile_comes_later(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    await world.router.contacts.edit(chat.contact_id, await world.fresh(ann), "Ann as she asked", None)
    late = ProfileResolved(contact_id=chat.contact_id, name="ann_1987", photo_url="https://cdn.example/a.jpg")
    await world.router.updates.apply(late)
    contact = await world.router.ports.contacts.get(chat.contact_id)
    assert contact is not None
    assert (contact.name, contact.photo_url, contact.profile_status) == (
        "Ann as she asked",
        "https://cdn.example/a.jpg",
        "resolved",
    )
    assert (await world.chat(chat.id)).contact_name == "Ann as she asked"


async def test_a_profile_naming_the_contact_as_it_was_keeps_it_named_and_found(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel, sender="cust-3", sender_name="Ann Customer")
    await world.router.updates.apply(ProfileResolved(contact_id=chat.contact_id, name="Ann Customer", photo_url=None))
    contact = await world.router.ports.contacts.get(chat.contact_id)
    assert contact is not None and (contact.name, contact.profile_status) == ("Ann Customer", "resolved")
    assert (await world.chat(chat.id)).contact_name == "Ann Customer"
    page = await world.router.workplace.search(await world.fresh(ann), "customer", None, 10)
    assert ("contact", chat.contact_id) in [(hit.entry.kind, hit.entry.contact_id) for hit in page.items]


async def test_a_repeated_profile_renames_the_chats_a_crash_left_with_the_old_name(world: World) -> None:
    _, channel, _ = await world.team("to_all", [5])
    chat = await world.write(channel, sender="cust-4", sender_name="Ann")
    # The first report's contact write went through, then the router crashed before renaming the chats.
    await world.router.ports.contacts.resolve(chat.contact_id, "Ann Berg", None)
    assert (await world.chat(chat.id)).contact_name == "Ann"
    await world.router.updates.apply(ProfileResolved(contact_id=chat.contact_id, name="Ann Berg", photo_url=None))
    assert (await world.chat(chat.id)).contact_name == "Ann Berg"


async def test_an_edited_or_merged_contact_is_found_by_its_name_and_attributes(world: World) -> None:
    queue, web, (ann,) = await world.team("to_all", [5])
    whatsapp = await world.channel(queue, source="5566", provider="whatsapp")
    on_web = await world.write(web, sender="cust-1", text="hello")
    on_whatsapp = await world.write(whatsapp, sender="4917612345678", text="hi")
    cards, workplace = world.router.contacts, world.router.workplace

    async def found(words: str) -> list[tuple[str, str | None]]:
        page = await workplace.search(await world.fresh(ann), words, None, 10)
        return [(hit.entry.kind, hit.entry.contact_id) for hit in page.items]

    await cards.edit(on_web.contact_id, await world.fresh(ann), "Ann Example", {"crm": "crm4711"})
    assert await found("crm4711") == [("contact", on_web.contact_id)]
    assert await found("example ann") == [("contact", on_web.contact_id)]
    await cards.edit(on_whatsapp.contact_id, await world.fresh(ann), None, {"loyalty": "gold77"})
    assert await found("gold77") == [("contact", on_whatsapp.contact_id)]
    await cards.merge(on_web.contact_id, on_whatsapp.contact_id)
    # The kept contact now holds the other's attributes and is found by them; the merged one, chatless, is not.
    assert await found("gold77") == [("contact", on_web.contact_id)]


async def test_resolved_profiles_in_a_batch_name_their_contacts_and_chats_and_leave_other_reports(
    world: World,
) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    same = await world.write(channel, sender="cust-5", sender_name="Cleo Customer")
    other = await world.write(channel, sender="cust-6", sender_name="Dan")
    edited = await world.write(channel, sender="cust-7", sender_name="Eve")
    await world.router.contacts.edit(edited.contact_id, await world.fresh(ann), "Eve (VIP)", None)
    batch: list[RouterUpdate] = [
        ProfileResolved(contact_id=same.contact_id, name="Cleo Customer", photo_url=None),
        MessageSent(message_id="m1", chat_id=same.id),  # not a profile: left to `apply`
        ProfileResolved(contact_id=other.contact_id, name="Dan Berg", photo_url="https://p.example/dan.png"),
        ProfileResolved(contact_id=edited.contact_id, name="Eve Profile", photo_url=None),
    ]

    assert await world.router.updates.apply_batch(batch) == {1}

    contacts = world.router.ports.contacts
    named = [await contacts.get(chat.contact_id) for chat in (same, other, edited)]
    assert [(c.name, c.profile_status) for c in named if c is not None] == [
        ("Cleo Customer", "resolved"),
        ("Dan Berg", "resolved"),
        ("Eve (VIP)", "resolved"),  # an operator's name stays
    ]
    assert [(await world.chat(chat.id)).contact_name for chat in (same, other, edited)] == [
        "Cleo Customer",
        "Dan Berg",
        "Eve (VIP)",
    ]
    page = await world.router.workplace.search(await world.fresh(ann), "berg", None, 10)
    assert [(hit.entry.kind, hit.entry.contact_id) for hit in page.items] == [("contact", other.contact_id)]
    page = await world.router.workplace.search(await world.fresh(ann), "customer", None, 10)
    assert ("contact", same.contact_id) in [(hit.entry.kind, hit.entry.contact_id) for hit in page.items]
    assert await world.router.updates.apply_batch([MessageSent(message_id="m2", chat_id=same.id)]) == {0}
