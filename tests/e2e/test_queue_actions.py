"""Chat actions configured per queue through the running services (issue 14 item 6): GetChatActions offers only
what the queue allows, the API refuses the rest with 403 `action_not_allowed`, and an admin's change applies."""

import pytest

from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Stack, eventually, signed

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
