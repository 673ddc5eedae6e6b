"""The reference's remaining behaviour through the running services (issue 14 item 6): chat actions configured
per queue (GetChatActions offers only what the queue allows, the API refuses the rest with 403
`action_not_allowed`, an admin's change applies), and a reply through a channel an admin set inactive failing with
its reason instead of being sent. (Registering a Messenger channel subscribes the page: tests/e2e/test_messenger.py.)
"""

from typing import Any

import pytest

from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e


async def test_a_queue_allows_only_its_actions(stack: Stack) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    [token] = desk.operators.values()
    async with stack.admin() as admin:
        queue = (await admin.patch(f"/api/admin/queues/{desk.queue_id}", json={"actions": ["accept", "reply"]})).json()
        assert queue["actions"] == ["accept", "reply"]
        refused = await admin.patch(f"/api/admin/queues/{desk.queue_id}", json={"actions": ["fly"]})
        assert refused.status_code == 400
    raw, headers = signed(customer_message("m-1"), desk.secret)
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200

    async with stack.client("router", token) as operator:

        async def offered() -> list[dict[str, object]] | None:
            chats: list[dict[str, object]] = (await operator.get("/api/chats")).json()["items"]
            return chats or None

        [chat] = await eventually(offered)
        actions = f"/api/chats/{chat['id']}/actions"
        assert (await operator.get(actions)).json()["actions"] == ["accept", "read", "send"]
        declined = await operator.post(f"/api/chats/{chat['id']}/decline")
        assert declined.status_code == 403
        assert declined.json() == {"error": "action_not_allowed", "detail": "the queue support does not allow decline"}
        assert (await operator.post(f"/api/chats/{chat['id']}/accept")).status_code == 200
        assert (await operator.post(f"/api/chats/{chat['id']}/messages", json={"text": "hi"})).status_code == 202
        closing = await operator.post(f"/api/chats/{chat['id']}/close")
        assert (closing.status_code, closing.json()["error"]) == (403, "action_not_allowed")
        async with stack.admin() as admin:
            await admin.patch(f"/api/admin/queues/{desk.queue_id}", json={"actions": ["close"]})
        assert (await operator.get(actions)).json()["actions"] == ["read", "close"]
        replying = await operator.post(f"/api/chats/{chat['id']}/messages", json={"text": "more"})
        assert (replying.status_code, replying.json()["error"]) == (403, "action_not_allowed")
        assert (await operator.post(f"/api/chats/{chat['id']}/close")).status_code == 200


async def test_a_reply_through_a_channel_set_inactive_fails_with_the_reason(stack: Stack, simulator: Simulator) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    [token] = desk.operators.values()
    raw, headers = signed(customer_message("m-1"), desk.secret)
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
    async with stack.client("router", token) as operator:

        async def offered() -> list[dict[str, Any]] | None:
            chats: list[dict[str, Any]] = (await operator.get("/api/chats")).json()["items"]
            return chats or None

        [chat] = await eventually(offered)
        async with stack.admin() as admin:
            off = await admin.patch(f"/api/admin/channels/{desk.channel_id}", json={"is_active": False})
            assert off.json()["is_active"] is False
        reply = await operator.post(f"/api/chats/{chat['id']}/messages", json={"text": "hello?"})
        assert reply.status_code == 202

        async def failed() -> dict[str, Any] | None:
            messages = (await operator.get(f"/api/chats/{chat['id']}/messages")).json()["items"]
            mine = [m for m in messages if m["id"] == reply.json()["id"] and m["status"] == "failed"]
            return mine[0] if mine else None

        settled = await eventually(failed, timeout=20)
    assert settled["failure_reason"] == "the channel Acme chat is inactive: replies through it are not sent"
    assert simulator.state.select("/thirdparty/") == []
