"""Issue 14's admin and integration use cases on the world: named API tokens and their scopes, the audit log,
actions per queue, outbound webhooks' subscriptions and the events announced to them.
Written once, run on the fakes here and on MongoDB in tests/integration/test_engine_on_mongo.py."""

from typing import Any

import pytest
from pydantic import ValidationError

from omni_contracts import MessageSent, WebhookDelivery
from omni_router.domain.access import token_hash
from omni_router.domain.admin import OperatorSettings
from omni_router.domain.errors import Forbidden, Invalid, InvalidBody, NotFound, Unauthorized
from omni_router.domain.integration import Subscription, WebhookSettings, event_id_of, subscription_view
from omni_router.domain.model import Queue
from omni_router.domain.tokens import BOOTSTRAP, TokenSettings
from omni_router.service_layer.ports import BrokerUnavailable
from omni_router.service_layer.sweeps import sweep_routing
from tests.support.world import ADMIN_TOKEN, World

# API tokens ---------------------------------------------------------------------------------------------------------


async def test_an_api_token_is_answered_once_stored_as_a_hash_and_named_by_its_scopes(world: World) -> None:
    tokens = world.router.tokens
    token, secret = await tokens.create(TokenSettings(name="crm sync", scopes=["reports:read", "reports:read"]))
    assert token.token_hash == token_hash(secret) and secret not in repr(token)
    assert token.scopes == ("reports:read",)
    caller = await tokens.identify(secret)
    assert (caller.token_id, caller.name, caller.scopes) == (token.id, "crm sync", ("reports:read",))
    tokens.check(caller, "reports:read")
    with pytest.raises(Forbidden) as refused:
        tokens.check(caller, "admin")
    assert refused.value.code == "insufficient_scope"
    assert refused.value.detail == "this token's scopes (reports:read) do not include admin"
    assert [t.id for t in await tokens.list()] == [token.id]


async def test_admin_opens_every_scope_and_the_bootstrap_token_is_admin(world: World) -> None:
    tokens = world.router.tokens
    _, secret = await tokens.create(TokenSettings(name="ops", scopes=["admin"]))
    for caller in (await tokens.identify(secret), await tokens.identify(ADMIN_TOKEN)):
        tokens.check(caller, "admin")
        tokens.check(caller, "reports:read")
    assert await tokens.identify(ADMIN_TOKEN) == BOOTSTRAP


async def test_a_revoked_token_is_refused_at_once_and_an_operators_is_forbidden(world: World) -> None:
    tokens = world.router.tokens
    token, secret = await tokens.create(TokenSettings(name="old", scopes=["admin"]))
    await tokens.revoke(token.id)
    with pytest.raises(Unauthorized):
        await tokens.identify(secret)
    with pytest.raises(NotFound):
        await tokens.revoke(token.id)
    _, operator_token = await world.router.admin.create_operator(OperatorSettings(name="Ann"))
    with pytest.raises(Forbidden) as refused:
        await tokens.identify(operator_token)
    assert refused.value.code == "forbidden"


# The audit log ------------------------------------------------------------------------------------------------------


async def test_the_audit_log_pages_newest_first(world: World) -> None:
    audit = world.router.audit
    for n in range(5):
        world.clock.advance(1)
        await audit.record(BOOTSTRAP if n % 2 else None, "POST", f"/api/admin/queues/{n}", str(n), 201)
    first, cursor = await audit.page(None, 2)
    assert [e.target_id for e in first] == ["4", "3"] and cursor is not None
    second, cursor = await audit.page(cursor, 2)
    assert [e.target_id for e in second] == ["2", "1"]
    last, cursor = await audit.page(cursor, 2)
    assert [e.target_id for e in last] == ["0"] and cursor is None
    assert (second[1].token_id, second[1].name) == (None, "ADMIN_TOKEN")
    assert (last[0].token_id, last[0].name) == (None, None)
    assert first[0].at > last[0].at


# Actions per queue --------------------------------------------------------------------------------------------------


async def test_a_queue_offers_and_allows_only_its_actions(world: World) -> None:
    queue, channel, (ann, bob) = await world.team("to_all", [5, 5], actions=["accept", "reply", "decline"])
    chat = await world.write(channel)
    assert await world.router.desk.actions(chat.id, ann) == ["accept", "decline", "read", "send"]
    with pytest.raises(Forbidden) as refused:
        await world.router.desk.close(chat.id, ann)
    assert (refused.value.code, refused.value.detail) == (
        "action_not_allowed",
        "the queue support does not allow close",
    )
    await world.reply(chat, ann)  # replying accepts it
    with pytest.raises(Forbidden):
        await world.router.desk.transfer(chat.id, await world.fresh(ann), bob.id, None)
    assert await world.router.desk.actions(chat.id, ann) == ["read", "send"]

    changed = await world.router.admin.change("queues", queue.id, {"actions": ["close"]})
    assert isinstance(changed, Queue) and changed.actions == ("close",)
    with pytest.raises(Forbidden):
        await world.reply(chat, ann)
    assert await world.router.desk.actions(chat.id, ann) == ["read", "close"]
    await world.router.desk.close(chat.id, ann)
    with pytest.raises(InvalidBody):
        await world.router.admin.change("queues", queue.id, {"actions": ["fly"]})
    unchanged = await world.router.admin.get("queues", queue.id)
    assert isinstance(unchanged, Queue) and unchanged.actions == ("close",)
    everything = await world.router.admin.change("queues", queue.id, {"actions": None})
    assert isinstance(everything, Queue) and everything.actions is None


# Outbound webhooks --------------------------------------------------------------------------------------------------

ALL_EVENTS = ["chat.created", "chat.assigned", "chat.closed", "message.created", "message.status"]


async def subscribe(world: World, url: str = "https://crm.example/hooks", **more: Any) -> Subscription:
    body = {"url": url, "events": ALL_EVENTS, "secret": "whsec-0123456789abcdef", **more}
    return await world.router.webhooks.subscribe(WebhookSettings.model_validate(body))


def delivered(world: World, *kinds: str) -> list[WebhookDelivery]:
    found = [e for e in world.events.published if isinstance(e, WebhookDelivery)]
    return [d for d in found if not kinds or d.webhook.event in kinds]


async def test_a_chats_life_is_announced_to_its_subscribers_once_each(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    crm = await subscribe(world)
    only_closing = await subscribe(world, "https://bi.example/in", events=["chat.closed"])
    chat = await world.write(channel, text="where is my order?")
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    reply = await world.reply(chat, ann, "on its way")
    await world.router.updates.apply(MessageSent(message_id=reply.id, chat_id=chat.id, provider_message_id="p-1"))
    await world.router.desk.close(chat.id, await world.fresh(ann))

    mine = [d for d in delivered(world) if d.subscription_id == crm.id]
    assert [d.webhook.event for d in mine] == [
        "chat.created",
        "message.created",
        "chat.assigned",
        "message.created",
        "message.status",
        "chat.closed",
    ]
    created, incoming, assigned, outgoing, status, closed = (d.webhook for d in mine)
    assert created.id == event_id_of(chat.id, "chat.created") and created.data["chat"]["id"] == chat.id
    assert incoming.data["message"]["text"] == "where is my order?"
    assert incoming.data["message"]["direction"] == "incoming"
    assert (assigned.data["chat"]["operator_id"], assigned.data["reason"]) == (ann.id, "accepted")
    assert (outgoing.data["message"]["id"], outgoing.data["message"]["direction"]) == (reply.id, "outgoing")
    assert status.data == {"chat_id": chat.id, "message_id": reply.id, "status": "sent"}
    assert (closed.data["chat"]["status"], closed.data["reason"]) == ("closed", "closed_by_operator")
    assert len({d.webhook.id for d in mine}) == 6
    [bi] = [d for d in delivered(world) if d.subscription_id == only_closing.id]
    assert bi.webhook == closed  # one event, the same id for every subscription

    # A receipt redelivered: the same event id again (the dispatcher and receivers take it once).
    await world.router.updates.apply(MessageSent(message_id=reply.id, chat_id=chat.id, provider_message_id="p-1"))
    assert delivered(world, "message.status")[-1].webhook.id == status.id


async def test_nothing_is_published_without_subscribers_and_a_deleted_subscription_gets_nothing(world: World) -> None:
    _, channel, _ = await world.team("to_all", [5])
    await world.write(channel)
    assert delivered(world) == []
    crm = await subscribe(world)
    await world.router.webhooks.delete(crm.id)
    await world.write(channel, "cust-2")
    assert delivered(world) == []
    with pytest.raises(NotFound):
        await world.router.webhooks.delete(crm.id)


async def test_a_message_redelivered_after_the_broker_refused_announces_its_chat_then(world: World) -> None:
    _, channel, _ = await world.team("to_all", [5])
    await subscribe(world)
    world.events.down = True
    with pytest.raises(BrokerUnavailable):
        await world.write(channel, message_id="pm-1")
    world.events.down = False
    chat = await world.write(channel, message_id="pm-1")  # the input queue's redelivery
    assert [d.webhook.event for d in delivered(world)] == ["chat.created", "message.created"]
    assert delivered(world)[0].webhook.id == event_id_of(chat.id, "chat.created")


async def test_a_change_the_broker_did_not_take_is_announced_by_the_outbox_sweep(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5])
    await subscribe(world)
    chat = await world.write(channel)
    world.operator_queues.down = True
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    assert delivered(world, "chat.assigned") == []
    world.operator_queues.down = False
    world.clock.advance(6)
    await sweep_routing(world.router.engine, world.router.notices, 2)
    [assigned] = delivered(world, "chat.assigned")
    world.clock.advance(6)
    assert await world.router.notices.publish_stale(5) == 0
    assert delivered(world, "chat.assigned") == [assigned]


async def test_subscriptions_refuse_private_urls_and_never_show_their_secret(world: World) -> None:
    with pytest.raises(Invalid) as refused:
        await subscribe(world, "http://127.0.0.1:9/x")
    assert refused.value.code == "invalid_url"
    with pytest.raises(ValidationError):
        WebhookSettings.model_validate({"url": "ftp://crm.example/", "events": ["chat.created"], "secret": "x" * 16})
    with pytest.raises(ValidationError):
        WebhookSettings.model_validate({"url": "https://crm.example/", "events": ["chat.opened"], "secret": "x" * 16})
    crm = await subscribe(world)
    assert "whsec" not in str(subscription_view(crm))
    assert [s.id for s in await world.router.webhooks.subscriptions()] == [crm.id]
    assert await world.router.webhooks.deliveries(crm.id, None, 10) == ([], None)
    with pytest.raises(NotFound):
        await world.router.webhooks.deliveries("nope", None, 10)


async def test_greetings_csat_questions_and_ratings_are_announced(world: World) -> None:
    _, channel, (ann,) = await world.team(
        "to_all", [5], greeting_text="Hi there", csat={"enabled": True, "question": "Rate us 1-5"}
    )
    await subscribe(world, events=[*ALL_EVENTS, "rating.created"])
    chat = await world.write(channel, text="hello")
    await world.router.desk.accept(chat.id, await world.fresh(ann))
    await world.router.desk.close(chat.id, await world.fresh(ann))
    await world.write(channel, text="5 great", message_id="r-1")
    await world.write(channel, text="5 great", message_id="r-1")  # delivered again: announced once

    said = [d.webhook.data["message"] for d in delivered(world, "message.created")]
    assert [(m["direction"], m["text"]) for m in said] == [
        ("incoming", "hello"),
        ("outgoing", "Hi there"),
        ("outgoing", "Rate us 1-5"),
        ("incoming", "5 great"),
    ]
    [rated] = delivered(world, "rating.created")
    rating_message = said[-1]["id"]
    assert rated.webhook.id == event_id_of(rating_message, "rating.created")
    assert rated.webhook.data["chat"]["id"] == chat.id
    assert (rated.webhook.data["rating"]["score"], rated.webhook.data["rating"]["comment"]) == (5, "great")
    # Handled again (as after a crash between storing the rating and announcing it): the same event id.
    closed, stored = await world.chat(chat.id), await world.router.ports.messages.get(rating_message)
    assert stored is not None
    await world.router.courtesy.record_rating(closed, stored)
    assert [d.webhook.id for d in delivered(world, "rating.created")] == [rated.webhook.id] * 2


async def test_a_contacts_edit_and_merge_are_announced_once_each(world: World) -> None:
    queue, web, (ann,) = await world.team("to_all", [5])
    other = await world.channel(queue, source="5566", provider="whatsapp")
    await subscribe(world, events=["contact.updated"])
    mine, theirs = await world.write(web, sender="cust-1"), await world.write(other, sender="4917612345678")
    cards = world.router.contacts
    await cards.edit(mine.contact_id, await world.fresh(ann), "Ann Example", {"email": "ann@example.com"})
    [edited] = delivered(world, "contact.updated")
    assert edited.webhook.data["contact"]["name"] == "Ann Example"
    kept = await cards.merge(mine.contact_id, theirs.contact_id)
    assert await cards.merge(mine.contact_id, theirs.contact_id) == kept  # repeated: announced under the same id
    updates = delivered(world, "contact.updated")
    assert len({d.webhook.id for d in updates}) == 2 and updates[-1].webhook.data["contact"] == kept


async def test_notes_and_labels_are_refused_where_the_queue_does_not_allow_them(world: World) -> None:
    _, channel, (ann,) = await world.team("to_all", [5], actions=["accept", "reply"])
    chat = await world.write(channel)
    await world.reply(chat, ann)
    for refused_action in (
        world.router.workplace.add_note(chat.id, await world.fresh(ann), "internal"),
        world.router.workplace.label_chat(chat.id, await world.fresh(ann), []),
    ):
        with pytest.raises(Forbidden) as refused:
            await refused_action
        assert refused.value.code == "action_not_allowed"
