"""Issue 14's admin and integration use cases on the world: named API tokens and their scopes, the audit log.
Written once, run on the fakes here and on MongoDB in tests/integration/test_engine_on_mongo.py."""

import pytest

from omni_router.domain.access import token_hash
from omni_router.domain.admin import OperatorSettings
from omni_router.domain.errors import Forbidden, InvalidBody, NotFound, Unauthorized
from omni_router.domain.model import Queue
from omni_router.domain.tokens import BOOTSTRAP, TokenSettings
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
    assert (refused.value.code, refused.value.detail) == ("action_not_allowed", "the queue support does not allow close")
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
