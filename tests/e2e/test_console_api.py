"""What the router serves the operator console beyond the operator API: the page, who is signed in, the
directory of names, and the supervisor's overview."""

import pytest

from omni_runtime.database import Database
from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Stack, eventually, signed

pytestmark = pytest.mark.e2e


async def test_the_page_and_its_files_are_served_with_a_closed_content_policy(stack: Stack) -> None:
    await stack.start("router")
    async with stack.client("router") as anonymous:
        page = await anonymous.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert '<script type="module" src="/console/console.js">' in page.text
        script = await anonymous.get("/console/console.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert (await anonymous.get("/console/console.css")).status_code == 200
        assert (await anonymous.get("/console/nothing.js")).status_code == 404


async def test_me_directory_and_overview(stack: Stack, db: Database) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=2, online=1)
    (online_id, online_token), (offline_id, _offline_token) = desk.operators.items()
    async with stack.admin() as admin:
        created = await admin.post("/api/admin/operators", json={"name": "Sam", "role": "supervisor", "max_chats": 3})
        supervisor_id, supervisor_token = created.json()["id"], created.json()["token"]
    raw, headers = signed(customer_message("in-1"), desk.secret)
    async with stack.client("ingress") as ingress:
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
    await eventually(lambda: db.messages.find_one({"provider_message_id": "in-1", "routed": True}))

    async with stack.client("router", online_token) as client:
        me = (await client.get("/api/operator/me")).json()
        assert (me["id"], me["name"], me["role"], me["status"], me["max_chats"]) == (
            online_id,
            "op0",
            "operator",
            "online",
            5,
        )
        assert "token" not in me and "token_hash" not in me
        directory = (await client.get("/api/directory")).json()
        assert directory["channels"] == [{"id": desk.channel_id, "name": "Acme chat", "provider": "acme"}]
        assert directory["queues"] == [{"id": desk.queue_id, "name": "support"}]
        statuses = {o["id"]: o["status"] for o in directory["operators"]}
        assert statuses == {online_id: "online", offline_id: "offline", supervisor_id: "offline"}
        refused = await client.get("/api/supervisor/overview")
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")

    async with stack.client("router", supervisor_token) as client:
        overview = (await client.get("/api/supervisor/overview")).json()
    [queue] = overview["queues"]
    assert (queue["id"], queue["waiting"], queue["assigned"]) == (desk.queue_id, 1, 0)
    assert queue["oldest_waiting_since"] is not None and queue["longest_wait_seconds"] >= 0
    operators = {o["id"]: o for o in overview["operators"]}
    assert (operators[online_id]["status"], operators[online_id]["offered_chats"]) == ("online", 1)
    assert (operators[offline_id]["status"], operators[offline_id]["offered_chats"]) == ("offline", 0)
    assert operators[supervisor_id]["role"] == "supervisor"

    async with stack.client("router") as anonymous:
        for path in ("/api/operator/me", "/api/directory", "/api/supervisor/overview"):
            assert (await anonymous.get(path)).status_code == 401
