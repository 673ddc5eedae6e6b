"""The router's other use cases on the same world: customers' messages stored once, replies (and their
Idempotency-Key and outbox), reports from other services, notifications a broker outage left behind, capacity
repair, the admin and the console. Written once, run on the fakes here and on MongoDB in tests/integration."""

from datetime import timedelta

import pytest

from omni_contracts import (
    Attachment,
    AttachmentRequested,
    AttachmentStored,
    MessageFailed,
    MessageOutgoing,
    MessageSent,
    MessageStatusChanged,
    ProfileRequested,
    ProfileResolved,
)
from omni_router.domain.access import token_hash
from omni_router.domain.admin import ChannelSettings, OperatorSettings, QueueSettings
from omni_router.domain.errors import Conflict, Forbidden, Invalid, InvalidBody, NotFound, Unauthorized, Unprocessable
from omni_router.domain.model import Channel, Operator, Queue
from omni_router.service_layer.sweeps import sweep_routing
from tests.support.world import ADMIN_TOKEN, World

# Customers' messages -----------------------------------------------------------------------------------------------


async def test_a_message_delivered_twice_is_stored_and_routed_once(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    files = [Attachment(url="https://files.example/1.png", content_type="image/png", file_name="1.png")]
    chat = await world.write(channel, message_id="pm-1", attachments=files)
    again = await world.write(channel, message_id="pm-1", attachments=files)
    assert again.id == chat.id and len(world.told(ann)) == 1
    [stored] = (await world.router.desk.conversation(chat, None, 10)).items
    assert stored.attachments[0].index == 0 and stored.attachments[0].status == "pending"
    assert [type(e) for e in world.events.published] == [ProfileRequested, AttachmentRequested]
    assert (await world.router.ports.contacts.get(chat.contact_id)) is not None
    assert chat.contact_name == "New contact Shop-cust-1"


async def test_a_message_for_a_channel_that_is_gone_is_refused(world: World) -> None:
    _, channel, _ = await world.team("to_all", [5])
    await world.router.admin.delete("channels", channel.id)
    with pytest.raises(NotFound) as gone:
        await world.write(channel)
    assert gone.value.detail == f"channel {channel.id} does not exist"


async def test_a_message_in_a_queue_that_cannot_route_waits_for_it(world: World) -> None:
    queue, channel, (ann,) = await world.team("to_all", [5])
    await world.router.ports.queues.save(
        Queue(id=queue.id, routing_rule="no_such_rule"), ["routing_rule"]
    )  # as an older version may have left it
    chat = await world.write(channel)
    assert chat.waiting and chat.offered_to == ()
    await world.router.admin.change("queues", queue.id, {"routing_rule": "to_all"})
    assert (await world.chat(chat.id)).offered_to == (ann.id,)


# Replies ----------------------------------------------------------------------------------------------------------


async def test_a_reply_is_stored_published_and_a_new_chat_accepted_by_it(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    reply = await world.reply(chat, ann, "on its way")
    assert reply.status == "queued" and reply.recipient == "cust-1" and reply.operator_id == ann.id
    assert (await world.chat(chat.id)).operator_id == ann.id  # replying to an offer accepts it
    [outgoing] = [e for e in world.events.published if isinstance(e, MessageOutgoing)]
    assert (outgoing.message_id, outgoing.text, outgoing.provider) == (reply.id, "on its way", "acme")
    stored = await world.router.ports.messages.get(reply.id)
    assert stored is not None and stored.published and stored.publish_due is None


async def test_a_reply_under_an_idempotency_key_is_stored_once_and_another_request_under_it_refused(
    world: World,
) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    body = {"text": "hi", "attachments": []}
    send = world.router.replies.send
    first, repeat = await send(chat.id, await world.fresh(ann), "hi", [], key="k-1", request=body)
    again, repeated = await send(chat.id, await world.fresh(ann), "hi", [], key="k-1", request=body)
    assert (repeat, repeated) == (False, True) and again.id == first.id
    with pytest.raises(Unprocessable) as reused:
        await send(chat.id, await world.fresh(ann), "other", [], key="k-1", request={**body, "text": "other"})
    assert reused.value.code == "idempotency_key_reused"
    world.clock.advance(timedelta(hours=24, seconds=1).total_seconds())
    later, repeat_later = await send(chat.id, await world.fresh(ann), "other", [], key="k-1", request=body)
    assert not repeat_later and later.id != first.id  # the key's day is over: a new reply
    assert len([e for e in world.events.published if isinstance(e, MessageOutgoing)]) == 2


async def test_replies_are_refused_in_closed_and_others_chats(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [5, 5])
    chat = await world.write(channel)
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    with pytest.raises(NotFound):
        await world.reply(chat, bob)
    await world.router.desk.close(chat.id, await world.fresh(ann))
    with pytest.raises(Conflict) as closed:
        await world.reply(chat, ann)
    assert closed.value.code == "chat_closed"


async def test_a_reply_the_broker_did_not_take_is_published_by_the_reply_outbox(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    world.events.down = True
    reply = await world.reply(chat, ann)
    assert (await world.router.ports.messages.get(reply.id)).publish_due is not None  # type: ignore[union-attr]
    assert await world.router.replies.publish_due(older_than_seconds=10) == 0  # still down, and not due yet
    world.events.down = False
    assert await world.router.replies.publish_due(older_than_seconds=10) == 0  # its own request may still publish it
    world.clock.advance(11)
    assert await world.router.replies.publish_due(older_than_seconds=10) == 1
    assert await world.router.replies.publish_due(older_than_seconds=10) == 0
    assert [e.message_id for e in world.events.published if isinstance(e, MessageOutgoing)] == [reply.id]


async def test_a_reply_whose_channel_is_gone_fails_instead_of_waiting(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    world.events.down = True
    reply = await world.reply(chat, ann)
    await world.router.admin.delete("channels", channel.id)
    world.clock.advance(11)
    assert await world.router.replies.publish_due(older_than_seconds=10) == 0
    failed = await world.router.ports.messages.get(reply.id)
    assert failed is not None and failed.status == "failed" and failed.failure_reason == "channel deleted"


# Reports from other services --------------------------------------------------------------------------------------


async def test_delivery_reports_and_receipts_move_a_reply_forward_only_and_its_holder_hears_each(
    world: World,
) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    reply = await world.reply(chat, ann)
    updates, messages = world.router.updates, world.router.ports.messages
    # The dispatcher records `sent`, then reports it; a report redelivered notifies again with the same event id.
    await messages.move_status(channel.id, message_id=reply.id, from_statuses=["queued"], to="sent")
    sent = MessageSent(message_id=reply.id, chat_id=chat.id, provider_message_id="pm-1")
    await updates.apply(sent)
    await updates.apply(sent)
    at = world.clock.now() + timedelta(seconds=1)
    read = MessageStatusChanged(channel_id=channel.id, status="read", watermark=at, recipient="cust-1")
    delivered = MessageStatusChanged(channel_id=channel.id, status="delivered", watermark=at, recipient="cust-1")
    await updates.apply(read)
    await updates.apply(delivered)  # a late "delivered" after "read" moves nothing
    await updates.apply(MessageStatusChanged(channel_id=channel.id, provider_message_id="unknown", status="read"))
    notes = world.told(ann, "message.status")
    assert [n.data for n in notes] == [
        {"message_id": reply.id, "status": "sent"},
        {"message_id": reply.id, "status": "sent"},
        {"message_id": reply.id, "status": "read"},
    ]
    assert notes[0].event_id == notes[1].event_id != notes[2].event_id
    assert (await messages.get(reply.id)).status == "read"  # type: ignore[union-attr]
    await updates.apply(MessageFailed(message_id=reply.id, chat_id=chat.id, reason="blocked"))
    assert world.told(ann, "message.status")[-1].data == {
        "message_id": reply.id,
        "status": "failed",
        "failure_reason": "blocked",
    }
    await updates.apply(MessageSent(message_id=reply.id, chat_id="no-such-chat"))  # nobody to tell
    assert len(world.told(ann, "message.status")) == 4


async def test_a_failed_receipt_moves_a_sent_reply_to_failed_with_the_reason(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    chat = await world.write(channel)
    reply = await world.reply(chat, ann)
    messages = world.router.ports.messages
    await messages.move_status(channel.id, message_id=reply.id, from_statuses=["queued"], to="sent")
    at = world.clock.now() + timedelta(seconds=1)
    failed = MessageStatusChanged(channel_id=channel.id, status="failed", watermark=at, recipient="cust-1")
    await world.router.updates.apply(failed)
    stored = await messages.get(reply.id)
    assert stored is not None and stored.status == "failed"
    assert stored.failure_reason == "the messenger reported the message as failed"
    assert world.told(ann, "message.status")[-1].data == {
        "message_id": reply.id,
        "status": "failed",
        "failure_reason": "the messenger reported the message as failed",
    }


async def test_a_stored_attachment_and_a_resolved_profile_are_recorded(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    files = [Attachment(url="https://files.example/1.png", file_name="1.png")]
    chat = await world.write(channel, attachments=files)
    [message] = (await world.router.desk.conversation(chat, None, 10)).items
    await world.router.updates.apply(
        AttachmentStored(
            message_id=message.id,
            chat_id=chat.id,
            index=0,
            status="stored",
            file_id="65f0c0ffee0000000000abcd",
            size=3,
            content_type="image/png",
        )
    )
    [stored] = (await world.router.desk.conversation(chat, None, 10)).items
    assert (stored.attachments[0].status, stored.attachments[0].file_id) == ("stored", "65f0c0ffee0000000000abcd")
    assert world.told(ann)[-1].data == {"message_id": message.id, "attachment_index": 0, "attachment_status": "stored"}
    world.files.stored["65f0c0ffee0000000000abcd"] = b"png"
    attachment, download = await world.router.desk.file("65f0c0ffee0000000000abcd", await world.fresh(ann))
    assert attachment.file_name == "1.png" and download.length == 3
    with pytest.raises(NotFound):
        await world.router.desk.file("65f0c0ffee0000000000dead", await world.fresh(ann))
    await world.router.updates.apply(ProfileResolved(contact_id=chat.contact_id, name="Jane Doe", photo_url=None))
    assert (await world.chat(chat.id)).contact_name == "Jane Doe"


# Notifications a broker outage left behind -------------------------------------------------------------------------


async def test_notifications_the_broker_did_not_take_stay_in_the_outbox_for_the_sweep(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [5, 5])
    world.operator_queues.down = True
    chat = await world.write(channel)
    assert world.told(ann) == [] and (await world.chat(chat.id)).outbox_at is not None
    world.operator_queues.down = False
    await sweep_routing(world.router.engine, world.router.notices, 2)  # too young: on its way, maybe
    assert world.told(ann) == []
    world.clock.advance(6)
    await sweep_routing(world.router.engine, world.router.notices, 2)
    [offered] = world.told(ann)
    assert offered.event == "chat.offered" and (await world.chat(chat.id)).outbox_at is None
    world.clock.advance(6)
    assert await world.router.notices.publish_stale(5) == 0  # published once
    assert len(world.told(bob)) == 1


async def test_a_note_for_a_deleted_operator_is_dropped_not_retried(world: World) -> None:
    _, channel, (ann, bob) = await world.team("to_all", [5, 5])
    await world.operator_queues.delete(bob.id)  # bob's queue is gone, as when he was deleted
    await world.router.ports.operators.delete(bob.id)
    chat = await world.write(channel)
    assert (await world.chat(chat.id)).outbox_at is None and len(world.told(ann)) == 1


# Capacity repair --------------------------------------------------------------------------------------------------


async def test_capacity_repair_frees_units_no_chat_uses_and_records_units_chats_use(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [2])
    chat = await world.write(channel)
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    capacity = world.router.capacity
    assert await capacity.claim(ann.id, "crashed-before-its-chat-write") is not None
    await capacity.release(ann.id, chat.id)  # a hold lost
    assert sorted((await world.fresh(ann)).holds) == ["crashed-before-its-chat-write"]
    assert await capacity.repair(grace_seconds=10) == []  # the claim may still be on its way
    world.clock.advance(11)
    assert await capacity.repair(grace_seconds=10) == [ann.id]
    assert (await world.fresh(ann)).holds == (chat.id,) and (await world.fresh(ann)).load == 1


# The admin --------------------------------------------------------------------------------------------------------


async def test_admin_tokens_operator_tokens_and_unknown_tokens(world: World) -> None:
    await world.router.tokens.identify(ADMIN_TOKEN)
    operator, token = await world.router.admin.create_operator(OperatorSettings(name="Ann"))
    assert operator.token_hash == token_hash(token) and (await world.router.desk.operator_for(token)).id == operator.id
    with pytest.raises(Forbidden):
        await world.router.tokens.identify(token)
    with pytest.raises(Unauthorized):
        await world.router.tokens.identify("nonsense")
    with pytest.raises(Unauthorized):
        await world.router.desk.operator_for("nonsense")
    assert operator.id in world.operator_queues.queues  # declared before the operator exists


async def test_admin_changes_are_checked_as_creation_is_and_routing_follows_them(world: World) -> None:
    admin = world.router.admin
    queue, channel, (ann,) = await world.team("to_all", [5])
    with pytest.raises(Invalid):
        await admin.change("queues", queue.id, {"routing_rule": "nope"})
    with pytest.raises(Invalid):
        await admin.change("queues", queue.id, {"operator_ids": ["ghost"]})
    with pytest.raises(Invalid):
        await admin.change("queues", queue.id, {"created_at": "now"})
    with pytest.raises(Invalid):
        await admin.change("queues", queue.id, [])
    with pytest.raises(InvalidBody):
        await admin.change("operators", ann.id, {"max_chats": 0})
    with pytest.raises(Invalid):
        await admin.change("channels", channel.id, {"queue_id": "nowhere"})
    with pytest.raises(Invalid):
        await admin.change("channels", channel.id, {"settings": {"secret": ""}})
    with pytest.raises(NotFound):
        await admin.get("queues", "nowhere")
    assert await admin.get("queues", queue.id) == queue  # nothing refused changed anything

    changed = await admin.change("channels", channel.id, {"settings": {"outgoing_url": "https://new.example/"}})
    assert isinstance(changed, Channel) and changed.settings["secret"] == "s3cret"  # secrets are write-only
    await admin.change("operators", ann.id, {"status": "offline"})
    chat = await world.write(channel)
    assert chat.waiting
    await admin.change("operators", ann.id, {"status": "online", "max_chats": 7})
    assert (await world.chat(chat.id)).offered_to == (ann.id,) and (await world.fresh(ann)).max_chats == 7
    bob = await world.operator("bob")
    renamed = await admin.change("queues", queue.id, {"operator_ids": [ann.id, bob.id], "name": "vip"})
    assert isinstance(renamed, Queue) and renamed.operator_ids == (ann.id, bob.id) and renamed.name == "vip"
    assert [q.id for q in await admin.list("queues")] == [queue.id]
    assert {o.id for o in await admin.list("operators")} == {ann.id, bob.id}
    assert [c.id for c in await admin.list("channels")] == [channel.id]


async def test_deleting_an_operator_takes_them_offline_out_of_queues_and_their_queue_away(world: World) -> None:
    queue, channel, (ann, bob) = await world.team("to_available", [1, 1])
    chat = await world.write(channel)
    assert chat.offered_to == (ann.id,)
    await world.router.admin.delete("operators", ann.id)
    assert (await world.chat(chat.id)).offered_to == (bob.id,)
    remaining = await world.router.admin.get("queues", queue.id)
    assert isinstance(remaining, Queue) and remaining.operator_ids == (bob.id,)
    assert ann.id not in world.operator_queues.queues
    await world.router.admin.delete("queues", queue.id)
    with pytest.raises(NotFound):
        await world.router.admin.delete("queues", queue.id)


async def test_creating_refuses_unknown_rules_operators_queues_providers_and_duplicate_channels(world: World) -> None:
    admin = world.router.admin
    with pytest.raises(Invalid):
        await admin.create_queue(QueueSettings(name="q", routing_rule="nope"))
    with pytest.raises(Invalid):
        await admin.create_queue(QueueSettings(name="q", operator_ids=["ghost"]))
    queue = await admin.create_queue(QueueSettings(name="q"))
    with pytest.raises(Invalid):
        await admin.create_channel(ChannelSettings(name="c", provider="acme", source="s", queue_id="nowhere"))
    with pytest.raises(Invalid):
        await admin.create_channel(ChannelSettings(name="c", provider="unknown", source="s", queue_id=queue.id))
    telegram = await admin.create_channel(ChannelSettings(name="c", provider="telegram", source="s", queue_id=queue.id))
    with pytest.raises(Conflict) as duplicate:
        await admin.create_channel(ChannelSettings(name="d", provider="telegram", source="s", queue_id=queue.id))
    assert duplicate.value.code == "duplicate_channel"
    registered = await admin.register(telegram.id)
    assert registered.registration is not None and registered.registration["ok"] is True
    assert registered.settings["secret_token"] == "generated"


async def test_the_parking_lots_as_the_admin_sees_them(world: World) -> None:
    world.parking.parked = {"p-1": {"id": "p-1", "queue": "router.updates"}, "p-2": {"id": "p-2"}}
    parking = world.router.admin.parking
    assert [p["id"] for p in await parking.list(None, 100)] == ["p-1", "p-2"]
    assert await parking.find("p-1") == {"id": "p-1", "queue": "router.updates"}
    assert await parking.replay(None, {"p-1"}, discard=False) == 1 and await parking.find("p-1") is None


# The console ------------------------------------------------------------------------------------------------------


async def test_the_supervisors_overview_and_the_directory(world: World) -> None:
    queue, channel, (ann, bob) = await world.team("to_available", [1, 1])
    first = await world.write(channel, "c1")
    await world.write(channel, "c2")
    await world.write(channel, "c3")  # waits
    await world.router.desk.accept(first.id, await world.fresh(ann))
    world.clock.advance(30)
    overview = await world.router.console.overview()
    [line] = overview["queues"]
    assert (line["id"], line["waiting"], line["assigned"]) == (queue.id, 2, 1)
    assert line["longest_wait_seconds"] >= 30
    by_id = {o["id"]: o for o in overview["operators"]}
    assert (by_id[ann.id]["assigned_chats"], by_id[bob.id]["offered_chats"]) == (1, 1)
    directory = await world.router.console.directory()
    assert directory["channels"] == [{"id": channel.id, "name": "Shop", "provider": "acme"}]
    assert {o["id"] for o in directory["operators"]} == {ann.id, bob.id}
    assert isinstance(await world.fresh(ann), Operator)
