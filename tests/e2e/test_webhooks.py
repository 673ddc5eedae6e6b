"""Outbound webhooks end to end (issue 14 item 4): subscriptions made through the router's admin API, a chat's
life announced by the router and delivered signed by the dispatcher to the simulator's receivers, every attempt
listed by the router, and a receiver that keeps failing retried, parked, and delivered by a replay."""

import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.support.seed import customer_message, seed_desk
from tests.support.stack import Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e

SECRET = "whsec-crm-0123456789"
EVENTS = ["chat.created", "chat.assigned", "chat.closed", "message.created", "message.status"]


async def receiver(simulator: Simulator, name: str) -> str:
    async with simulator.client() as control:
        answer = await control.put(f"/_sim/receivers/{name}", json={"secret": SECRET})
    return str(answer.json()["url"])


async def taken(simulator: Simulator, name: str, count: int) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        async with simulator.client() as control:
            state: dict[str, Any] = (await control.get(f"/_sim/receivers/{name}")).json()
        return state if len(state["events"]) >= count else None

    return await eventually(check, timeout=20)


async def attempts(admin: httpx.AsyncClient, webhook_id: str, settled: int) -> list[dict[str, Any]]:
    """The subscription's attempts as the router lists them, once `settled` ended delivered or failed."""

    async def check() -> list[dict[str, Any]] | None:
        answer = await admin.get(f"/api/admin/webhooks/{webhook_id}/deliveries")
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items if sum(a["outcome"] != "retrying" for a in items) >= settled else None

    return await eventually(check, timeout=20)


async def test_a_chats_life_reaches_subscribers_signed_and_a_failing_receiver_is_parked_then_replayed(
    stack: Stack, simulator: Simulator
) -> None:
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=1, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    [token] = desk.operators.values()
    await simulator.fault(path_prefix="/receivers/flaky", status=503)
    async with stack.admin() as admin:
        made = await admin.post(
            "/api/admin/webhooks", json={"url": await receiver(simulator, "crm"), "events": EVENTS, "secret": SECRET}
        )
        assert made.status_code == 201, made.text
        crm = made.json()
        assert set(crm) == {"id", "url", "events", "active", "created_at"}  # never the secret
        flaky = (
            await admin.post(
                "/api/admin/webhooks",
                json={"url": await receiver(simulator, "flaky"), "events": ["chat.created"], "secret": SECRET},
            )
        ).json()
        wrong = await admin.post(
            "/api/admin/webhooks", json={"url": "https://x.example/", "events": ["chat.opened"], "secret": SECRET}
        )
        assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_body")
        listed = (await admin.get("/api/admin/webhooks")).json()["items"]
        assert [w["id"] for w in listed] == [crm["id"], flaky["id"]] and SECRET not in str(listed)

    raw, headers = signed(customer_message("m-1", "where is my parcel?"), desk.secret)
    async with stack.client("ingress") as ingress:
        started = time.monotonic()
        assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
    await taken(simulator, "crm", 1)  # chat.created
    print(f"webhooks: chat.created reached the receiver {time.monotonic() - started:.3f} s after")
    async with stack.client("router", token) as operator:

        async def offered() -> list[dict[str, Any]] | None:
            chats: list[dict[str, Any]] = (await operator.get("/api/chats")).json()["items"]
            return chats or None

        [chat] = await eventually(offered)
        assert (await operator.post(f"/api/chats/{chat['id']}/accept")).status_code == 200
        reply = (await operator.post(f"/api/chats/{chat['id']}/messages", json={"text": "on its way"})).json()

        async def sent() -> bool:
            messages = (await operator.get(f"/api/chats/{chat['id']}/messages")).json()["items"]
            return any(m["id"] == reply["id"] and m["status"] == "sent" for m in messages)

        await eventually(sent)
        assert (await operator.post(f"/api/chats/{chat['id']}/close")).status_code == 200

    state = await taken(simulator, "crm", 6)
    events = state["events"]
    assert Counter(e["event"] for e in events) == Counter(
        ["chat.created", "message.created", "chat.assigned", "message.created", "message.status", "chat.closed"]
    )
    assert all(state["signatures_valid"]) and state["replays"] == 0
    by_kind = {(e["event"], (e["data"].get("message") or {}).get("direction")): e for e in events}
    assert by_kind[("chat.created", None)]["data"]["chat"]["id"] == chat["id"]
    assert by_kind[("message.created", "incoming")]["data"]["message"]["text"] == "where is my parcel?"
    assert by_kind[("message.created", "outgoing")]["data"]["message"]["id"] == reply["id"]
    assert by_kind[("message.status", None)]["data"] == {
        "chat_id": chat["id"],
        "message_id": reply["id"],
        "status": "sent",
    }
    assert by_kind[("chat.closed", None)]["data"]["reason"] == "closed_by_operator"

    async with stack.admin() as admin:
        listed_attempts = await attempts(admin, crm["id"], 6)
        assert [a["outcome"] for a in listed_attempts] == ["delivered"] * 6
        assert {a["event_id"] for a in listed_attempts} == {e["id"] for e in events}
        assert all(a["attempt"] == 1 and a["status_code"] == 200 for a in listed_attempts)
        first = (await admin.get(f"/api/admin/webhooks/{crm['id']}/deliveries", params={"limit": 4})).json()
        rest = (
            await admin.get(f"/api/admin/webhooks/{crm['id']}/deliveries", params={"cursor": first["next_cursor"]})
        ).json()
        assert first["items"] + rest["items"] == listed_attempts and rest["next_cursor"] is None

        failing = await attempts(admin, flaky["id"], 1)
        assert [a["outcome"] for a in failing] == ["retrying"] * (len(failing) - 1) + ["failed"]
        assert [a["attempt"] for a in failing] == list(range(1, len(failing) + 1))
        assert failing[0]["status_code"] == 503 and failing[-1]["error"].startswith("gave up after")
        parked = (await admin.get("/api/admin/parked", params={"queue": "dispatcher.webhooks"})).json()["items"]
        assert [p["body"]["subscription_id"] for p in parked] == [flaky["id"]]
        async with simulator.client() as control:
            assert (await control.delete("/_sim/faults")).status_code == 204
        replayed = await admin.post("/api/admin/parked/replay", json={"queue": "dispatcher.webhooks"})
        assert replayed.json() == {"replayed": 1}
        after = await attempts(admin, flaky["id"], 2)
        assert (after[-1]["attempt"], after[-1]["outcome"]) == (len(failing) + 1, "delivered")
        [created] = (await taken(simulator, "flaky", 1))["events"]
        assert created["id"] == by_kind[("chat.created", None)]["id"]  # one event, one id for every subscriber

        assert (await admin.delete(f"/api/admin/webhooks/{flaky['id']}")).status_code == 204
        assert (await admin.get(f"/api/admin/webhooks/{flaky['id']}/deliveries")).json()["items"] == after
        assert (await admin.delete(f"/api/admin/webhooks/{flaky['id']}")).status_code == 404
