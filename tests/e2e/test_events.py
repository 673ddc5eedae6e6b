"""`GET /api/events` over real HTTP: live within a second of the webhook, the same JSON as the operator's queue,
reconnect from `Last-Event-ID`, one operator's stream only, tokens checked, and an end when the router stops."""

import asyncio
import time

import httpx
import pytest

from omni_router.entrypoints import events_api
from omni_runtime.database import Database
from omni_runtime.settings import Settings
from tests.support.events import open_stream
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import ADMIN_TOKEN, OperatorInbox, Stack, signed

pytestmark = pytest.mark.e2e


async def _write_in(stack: Stack, desk: Desk, message_id: str, sender: str = "cust-1") -> None:
    raw, headers = signed(customer_message(message_id, sender=sender), desk.secret)
    async with stack.client("ingress") as ingress:
        answer = await ingress.post(f"/webhooks/{desk.provider}/receive", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text


async def test_offer_streams_within_a_second_of_the_webhook_as_the_queue_json(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    operator_id, token = next(iter(desk.operators.items()))
    async with open_stream(stack.url("router"), token) as stream:
        started = time.monotonic()
        await _write_in(stack, desk, "m-1")
        note = await stream.next(timeout=5.0)
        latency = time.monotonic() - started
    print(f"SSE chat.offered {latency * 1000:.0f} ms after the webhook was sent")
    assert note.event == "chat.offered"
    assert latency < 1.0, f"chat.offered arrived {latency:.3f} s after the webhook"
    assert note.body["operator_id"] == operator_id and note.body["event"] == "chat.offered"
    stored = await db.notifications.find_one({"event_id": note.body["event_id"]})
    assert stored is not None and note.id == stored["_id"]
    async with OperatorInbox(settings.amqp_url) as inbox:
        [queued] = await inbox.drain(operator_id, quiet=0.3)
    assert queued == note.body


async def test_reconnect_with_last_event_id_replays_exactly_what_followed(stack: Stack) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=1)
    token = next(iter(desk.operators.values()))
    async with open_stream(stack.url("router"), token) as stream:
        for n in range(3):
            await _write_in(stack, desk, f"m-{n}", sender=f"cust-{n}")
        first = [await stream.next() for _ in range(3)]
    assert [n.event for n in first] == ["chat.offered"] * 3
    assert [n.id for n in first] == sorted(n.id for n in first if n.id)  # positions only grow
    for n in range(3, 5):  # while nobody listens
        await _write_in(stack, desk, f"m-{n}", sender=f"cust-{n}")

    # The EventSource way this time: token and last event id in the query.
    async with open_stream(stack.url("router"), token, last_event_id=first[1].id, in_query=True) as stream:
        replayed = [await stream.next() for _ in range(3)]
        await _write_in(stack, desk, "m-5", sender="cust-5")
        live = await stream.collect(quiet=1.0)
    assert replayed[0].body == first[2].body  # the first one after the last event id
    assert len(live) == 1 and live[0].event == "chat.offered"
    chats = [n.body["chat_id"] for n in first[:2] + replayed + live]
    assert len(chats) == len(set(chats)) == 6, "each chat's offer once: none before the last event id, none twice"


async def test_a_stream_carries_only_its_own_operators_notifications(stack: Stack) -> None:
    await stack.start("ingress", "router")
    desk = await seed_desk(stack, operators=3, online=2)
    (a, token_a), (b, token_b), (_c, token_c) = desk.operators.items()
    url = stack.url("router")
    async with open_stream(url, token_a) as stream_a, open_stream(url, token_b) as stream_b:
        async with open_stream(url, token_c) as stream_c:
            await _write_in(stack, desk, "m-1")
            seen_a = await stream_a.collect(quiet=1.0)
            seen_b = await stream_b.collect(quiet=0.1)
            seen_c = await stream_c.collect(quiet=0.1)
        async with stack.client("router", token_a) as client:
            chat_id = seen_a[0].body["chat_id"]
            assert (await client.post(f"/api/chats/{chat_id}/accept")).status_code == 200
        seen_a += await stream_a.collect(quiet=1.0)
        seen_b += await stream_b.collect(quiet=0.1)
    assert [(n.event, n.body["operator_id"]) for n in seen_a] == [("chat.offered", a), ("chat.assigned", a)]
    assert [(n.event, n.body["operator_id"]) for n in seen_b] == [("chat.offered", b), ("chat.revoked", b)]
    assert seen_c == []  # offline: offered nothing


async def test_tokens_are_checked_and_a_bad_last_event_id_is_refused(stack: Stack) -> None:
    await stack.start("router")
    desk = await seed_desk(stack, operators=1)
    token = next(iter(desk.operators.values()))
    async with httpx.AsyncClient(base_url=stack.url("router"), timeout=5) as client:
        for headers, params in [
            ({}, {}),
            ({"Authorization": "Bearer not-a-token"}, {}),
            ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, {}),  # the admin is no operator
            ({}, {"token": "not-a-token"}),
        ]:
            answer = await client.get("/api/events", headers=headers, params=params)
            assert answer.status_code == 401, (headers, params)
            assert answer.json()["error"] == "unauthorized"
        answer = await client.get(
            "/api/events", headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "not-an-id"}
        )
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_last_event_id"


async def test_open_streams_end_when_the_router_stops(stack: Stack) -> None:
    # Ingress started last holds the process's SIGTERM handler, so sse-starlette's own shutdown detection
    # (which looks at that handler's server) cannot see the router stop: the router's draining must end it.
    await stack.start("router", "ingress")
    desk = await seed_desk(stack, operators=1)
    token = next(iter(desk.operators.values()))
    async with open_stream(stack.url("router"), token) as stream:
        started = time.monotonic()
        await stack.stop("router")
        stopped = time.monotonic() - started
        with pytest.raises(StopAsyncIteration):
            await stream.message(timeout=2.0)
    # Without the stream ending by itself, uvicorn would wait out its 10 s graceful timeout.
    assert stopped < 3.0, f"the router took {stopped:.1f} s to stop with a stream open"


async def test_a_quiet_stream_gets_keep_alive_pings(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_api, "PING_SECONDS", 0.2)
    await stack.start("router")
    desk = await seed_desk(stack, operators=1)
    token = next(iter(desk.operators.values()))
    pings: list[str] = []
    async with (
        httpx.AsyncClient(base_url=stack.url("router"), timeout=5) as client,
        client.stream("GET", "/api/events", params={"token": token}) as answer,
    ):
        assert answer.status_code == 200
        async with asyncio.timeout(2.0):
            async for line in answer.aiter_lines():
                if line.startswith(": ping"):
                    pings.append(line)
                if len(pings) == 3:
                    break
    assert len(pings) == 3
