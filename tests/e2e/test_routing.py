"""The routing engine end to end: fairness, capacity across two routers, accept races, the waiting line,
offer timeouts, operators going offline, the completion timeout across a restart, transfer and visibility."""

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from tests.support.routing import another_router, seed_team, set_status, write_in
from tests.support.seed import customer_message
from tests.support.stack import OperatorInbox, Stack, eventually, signed

pytestmark = pytest.mark.e2e

OPEN = {"$in": ["new", "assigned"]}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Sweeps a few times a second, so timeouts in these tests take well under a second to act."""
    return settings.model_copy(update={"routing_sweep_seconds": 0.1, "completion_sweep_seconds": 0.2})


async def _routed(
    db: Database, count: int, query: dict[str, Any] | None = None, collection: str = "chats"
) -> list[Document]:
    """The chats (or other documents) once `count` of them match `query` (default: chats offered to somebody)."""
    query = query or {"status": "new", "offered_to": {"$size": 1}}

    async def enough() -> list[Document] | None:
        found = await db[collection].find(query).sort("_id", 1).to_list()
        return found if len(found) >= count else None

    return await eventually(enough, timeout=30)


async def _notes(settings: Settings, operators: list[str], quiet: float = 0.3) -> dict[str, list[dict[str, Any]]]:
    """Each operator's notifications so far, read from their queues side by side."""
    async with OperatorInbox(settings.amqp_url) as inbox:
        found = await asyncio.gather(*(inbox.drain(op, quiet=quiet) for op in operators))
    return dict(zip(operators, found, strict=True))


async def _chat_of(db: Database, provider_message_id: str) -> Document:
    message = await eventually(
        lambda: db.messages.find_one({"provider_message_id": provider_message_id, "routed": True})
    )
    chat = await db.chats.find_one({"_id": message["chat_id"]})
    assert chat is not None
    return chat


async def test_to_available_spreads_300_chats_evenly_over_equal_operators(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_available", capacities=[1000, 1000, 1000])
    started = time.monotonic()
    await write_in(stack, team, range(300))
    chats = await _routed(db, 300)
    per_operator = Counter(c["reserved_for"] for c in chats)
    assert set(per_operator) == set(team.operators)
    assert max(per_operator.values()) - min(per_operator.values()) <= 1, per_operator
    async with OperatorInbox(settings.amqp_url) as inbox:
        for operator in team.operators:
            offered: list[dict[str, Any]] = []

            async def all_offers(operator: str = operator, offered: list[dict[str, Any]] = offered) -> bool:
                offered += await inbox.drain(operator, quiet=0.1)
                return len(offered) >= per_operator[operator]

            await eventually(all_offers)
            assert [n["event"] for n in offered] == ["chat.offered"] * per_operator[operator]
    async with stack.admin() as admin:
        loads = {op["id"]: op["active_chats"] for op in (await admin.get("/api/admin/operators")).json()["items"]}
    assert loads == dict(per_operator)
    assert time.monotonic() - started < 60


async def test_capacities_hold_with_two_routers_on_one_queue(stack: Stack, db: Database, settings: Settings) -> None:
    await stack.start("ingress", "router")
    capacities = [2, 5, 10]
    async with another_router(settings) as second:
        routers = [stack.url("router"), second]
        team = await seed_team(stack, rule="to_available", capacities=capacities)
        limit = dict(zip(team.operators, capacities, strict=True))
        await write_in(stack, team, range(60))
        peak: Counter[str] = Counter()

        async def check_capacity() -> int:
            """Counts, in one read, what each operator holds now; answers how many chats are closed."""
            chats = await db.chats.find({}, {"status": 1, "operator_id": 1, "reserved_for": 1}).to_list()
            holding = Counter(
                c["operator_id"] or c["reserved_for"] for c in chats if c["status"] in ("new", "assigned")
            )
            holding.pop(None, None)
            for operator, count in holding.items():
                assert count <= limit[operator], (operator, count, limit[operator])
                peak[operator] = max(peak[operator], count)
            async for operator in db.operators.find({}):
                assert operator["load"] <= operator["max_chats"], operator
            return sum(1 for c in chats if c["status"] == "closed")

        async def work(index: int, operator: str, router: str) -> None:
            """The operator accepts what is offered and closes what they accepted before."""
            async with httpx.AsyncClient(
                base_url=router, headers={"Authorization": f"Bearer {team.tokens[operator]}"}
            ) as client:
                mine = (await client.get("/api/chats", params={"limit": 50})).json()["items"]
                for chat in mine:
                    action = "accept" if chat["status"] == "new" else "close"
                    answer = await client.post(f"/api/chats/{chat['id']}/{action}")
                    assert answer.status_code in (200, 409), answer.text

        # Every unit taken before anyone answers: each operator is at capacity now.
        await _routed(db, sum(capacities), {"status": "new", "reserved_for": {"$ne": None}})
        rounds = 0
        while await check_capacity() < 60:
            rounds += 1
            assert rounds < 200, "the chats did not get through"
            await asyncio.gather(*(work(n, op, routers[(n + rounds) % 2]) for n, op in enumerate(team.operators)))
    assert peak == Counter(limit), (peak, limit)
    async for operator in db.operators.find({}):
        assert (operator["load"], operator["holds"]) == (0, []), operator


async def test_ten_concurrent_accepts_have_one_winner(stack: Stack, db: Database, settings: Settings) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_all", capacities=[5] * 10)
    await write_in(stack, team, range(1))
    [chat] = await _routed(db, 1, {"status": "new", "offered_to": {"$size": 10}})

    async def accept(operator: str) -> int:
        async with stack.client("router", team.tokens[operator]) as client:
            return (await client.post(f"/api/chats/{chat['_id']}/accept")).status_code

    answers = dict(zip(team.operators, await asyncio.gather(*map(accept, team.operators)), strict=True))
    assert sorted(answers.values()) == [200] + [409] * 9, answers
    [winner] = [op for op, status in answers.items() if status == 200]
    for operator, notes in (await _notes(settings, team.operators)).items():
        seen = [n["event"] for n in notes]
        assert seen == ["chat.offered", "chat.assigned" if operator == winner else "chat.revoked"], (operator, seen)
    stored = await db.chats.find_one({"_id": chat["_id"]})
    assert stored is not None and (stored["status"], stored["operator_id"]) == ("assigned", winner)
    loads = {op["_id"]: op["load"] async for op in db.operators.find({})}
    assert loads == {op: int(op == winner) for op in team.operators}


async def test_chats_wait_while_nobody_is_online_and_are_offered_oldest_first(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_available", capacities=[2], online=0)
    operator, token = team.operators[0], team.token(0)
    ids = []
    for n in range(3):
        await write_in(stack, team, range(n, n + 1))
        ids.append((await _chat_of(db, f"m-{n}"))["_id"])
    await asyncio.sleep(0.3)  # a few sweeps: still nobody to offer them to
    waiting = await db.chats.find({}).sort("_id", 1).to_list()
    assert [(c["_id"], c["offered_to"], c["waiting"]) for c in waiting] == [(i, [], True) for i in ids]

    await set_status(stack, token, "online")
    async with OperatorInbox(settings.amqp_url) as inbox:
        first = await inbox.drain(operator, quiet=0.3)
        assert [(n["event"], n["chat_id"]) for n in first] == [("chat.offered", ids[0]), ("chat.offered", ids[1])]
        async with stack.client("router", token) as client:
            assert (await client.post(f"/api/chats/{ids[0]}/close")).status_code == 200
        after_close = await inbox.drain(operator, quiet=0.3)
    assert [(n["event"], n["chat_id"]) for n in after_close] == [("chat.closed", ids[0]), ("chat.offered", ids[2])]


async def test_an_unanswered_offer_moves_on_and_an_operator_going_offline_hands_over(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_available", capacities=[5, 5], offer_timeout_seconds=0.5)
    await write_in(stack, team, range(1))
    chat = await _chat_of(db, "m-0")
    first = (await _routed(db, 1))[0]["reserved_for"]
    [second] = [op for op in team.operators if op != first]

    moved = await _routed(db, 1, {"_id": chat["_id"], "reserved_for": second})
    assert moved[0]["offered_to"] == [second]
    # The first operator's unit is given back right after the offer moved.
    await _routed(db, 1, {"_id": first, "load": 0}, collection="operators")
    assert (await db.operators.find_one({"_id": second}) or {})["load"] == 1
    async with OperatorInbox(settings.amqp_url) as inbox:
        notes = await inbox.drain(first, quiet=0.1)
        assert [(n["event"], n["data"].get("reason")) for n in notes][:2] == [
            ("chat.offered", None),
            ("chat.revoked", "offer_timeout"),
        ]

        # The operator holding the offer goes offline: it moves to the other one at once.
        await set_status(stack, team.tokens[second], "offline")
        handed = await db.chats.find_one({"_id": chat["_id"]})
        assert handed is not None and handed["offered_to"] == [first]
        notes = await inbox.drain(second, quiet=0.1)
        assert ("chat.revoked", "operator_offline") in [(n["event"], n["data"].get("reason")) for n in notes]


async def test_assigned_chats_are_kept_or_returned_when_their_operator_goes_offline(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_available", capacities=[5, 5], online=1)
    holder, other = team.operators
    await write_in(stack, team, range(1))
    chat = await _chat_of(db, "m-0")
    async with stack.client("router", team.tokens[holder]) as client:
        assert (await client.post(f"/api/chats/{chat['_id']}/accept")).status_code == 200
    await set_status(stack, team.tokens[other], "online")

    await set_status(stack, team.tokens[holder], "offline")  # the queue keeps chats by default
    await asyncio.sleep(0.3)  # a few sweeps
    kept = await db.chats.find_one({"_id": chat["_id"]})
    assert kept is not None and (kept["status"], kept["operator_id"]) == ("assigned", holder)

    await set_status(stack, team.tokens[holder], "online")
    async with stack.admin() as admin:
        patched = await admin.patch(f"/api/admin/queues/{team.queue_id}", json={"on_operator_offline": "return"})
        assert patched.json()["on_operator_offline"] == "return"
    await set_status(stack, team.tokens[holder], "offline")
    [returned] = await _routed(db, 1, {"_id": chat["_id"], "reserved_for": other})
    assert (returned["status"], returned["operator_id"], returned["offered_to"]) == ("new", None, [other])
    loads = {op["_id"]: op["load"] async for op in db.operators.find({})}
    assert loads == {holder: 0, other: 1}


async def test_an_idle_chat_is_closed_after_its_timeout_even_across_a_router_restart(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_all", capacities=[5], completion_timeout_minutes=0.02)  # 1.2 s
    await write_in(stack, team, range(1))
    chat = await _chat_of(db, "m-0")
    async with stack.client("router", team.token(0)) as client:
        assert (await client.post(f"/api/chats/{chat['_id']}/accept")).status_code == 200
    await stack.stop("router")
    await asyncio.sleep(1.3)
    assert (await db.chats.find_one({"_id": chat["_id"]}) or {})["status"] == "assigned"  # nobody was running

    await stack.start("router")
    closed = await _routed(db, 1, {"_id": chat["_id"], "status": "closed"})
    assert closed[0]["close_reason"] == "completion_timeout" and "open_key" not in closed[0]
    async with OperatorInbox(settings.amqp_url) as inbox:
        notes = await inbox.drain(team.operators[0], quiet=0.2)
    assert (notes[-1]["event"], notes[-1]["data"]) == ("chat.closed", {"reason": "completion_timeout"})
    assert (await db.operators.find_one({}) or {})["load"] == 0

    raw, headers = signed(customer_message("m-again", sender="cust-0"), team.secret)
    async with stack.client("ingress") as ingress:
        assert (
            await ingress.post(f"/webhooks/{team.provider}/receive", content=raw, headers=headers)
        ).status_code == 200
    reopened = await _chat_of(db, "m-again")
    assert reopened["_id"] != chat["_id"] and reopened["status"] == "new"


async def test_a_chat_with_messages_is_not_closed_while_they_keep_coming(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_all", capacities=[5], completion_timeout_minutes=0.01)  # 0.6 s
    for n in range(4):
        raw, headers = signed(customer_message(f"k-{n}", sender="cust-0"), team.secret)
        async with stack.client("ingress") as ingress:
            await ingress.post(f"/webhooks/{team.provider}/receive", content=raw, headers=headers)
        chat = await _chat_of(db, f"k-{n}")
        await asyncio.sleep(0.3)
    assert await db.chats.count_documents({}) == 1 and chat["status"] == "new"
    await _routed(db, 1, {"_id": chat["_id"], "status": "closed"})


async def test_an_operator_sees_and_acts_only_on_chats_offered_to_or_held_by_them(
    stack: Stack, db: Database, settings: Settings
) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(
        stack, rule="to_all", capacities=[5, 5, 5], roles=["operator", "operator", "supervisor"], online=2
    )
    outsider, insider, supervisor = team.operators
    await set_status(stack, team.tokens[outsider], "offline")
    await write_in(stack, team, range(1))
    [chat] = await _routed(db, 1, {"offered_to": insider})
    chat_id = chat["_id"]
    assert chat["offered_to"] == [insider]

    async with stack.client("router", team.tokens[outsider]) as client:
        assert (await client.get("/api/chats")).json()["items"] == []
        assert (await client.get("/api/chats/unread-count")).json() == {"count": 0}
        attempts = [
            client.get(f"/api/chats/{chat_id}"),
            client.get(f"/api/chats/{chat_id}/messages"),
            client.get(f"/api/chats/{chat_id}/actions"),
            client.post(f"/api/chats/{chat_id}/accept"),
            client.post(f"/api/chats/{chat_id}/decline"),
            client.post(f"/api/chats/{chat_id}/read"),
            client.post(f"/api/chats/{chat_id}/messages", json={"text": "hi"}),
            client.post(f"/api/chats/{chat_id}/close"),
            client.post(f"/api/chats/{chat_id}/transfer", json={"operator_id": outsider}),
        ]
        for answer in await asyncio.gather(*attempts):
            assert answer.status_code == 404, (answer.request.url, answer.text)
            assert answer.json()["error"] == "chat_not_found"
    async with stack.client("router", team.tokens[insider]) as client:
        assert (await client.get(f"/api/chats/{chat_id}/actions")).json() == {
            "actions": ["accept", "decline", "read", "send", "close"]
        }
        assert (await client.get("/api/messages/unread-count")).json() == {"count": 1}
        assert (await client.post(f"/api/chats/{chat_id}/read")).json() == {"marked": 1}
        assert (await client.get("/api/chats/unread-count")).json() == {"count": 0}
    async with stack.client("router", team.tokens[supervisor]) as client:
        assert (await client.get(f"/api/chats/{chat_id}")).status_code == 200
        assert "transfer" in (await client.get(f"/api/chats/{chat_id}/actions")).json()["actions"]
    async with stack.client("router", team.tokens[outsider]) as client:
        assert (await client.get("/api/admin/queues")).status_code == 403


async def test_transfer_to_an_operator_and_to_a_queue(stack: Stack, db: Database, settings: Settings) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_all", capacities=[5, 1, 5], online=2)
    holder, full, elsewhere = team.operators
    async with stack.admin() as admin:
        second = await admin.post(
            "/api/admin/queues", json={"name": "billing", "routing_rule": "to_available", "operator_ids": [elsewhere]}
        )
    await set_status(stack, team.tokens[elsewhere], "online")
    await write_in(stack, team, range(2))
    chat_ids = [(await _chat_of(db, f"m-{n}"))["_id"] for n in range(2)]
    await _routed(db, 2, {"offered_to": {"$size": 3}})
    async with stack.client("router", team.tokens[holder]) as client:
        for chat_id in chat_ids:
            assert (await client.post(f"/api/chats/{chat_id}/accept")).status_code == 200
    async with stack.client("router", team.tokens[full]) as client:
        assert (
            await client.post(f"/api/chats/{chat_ids[0]}/transfer", json={"operator_id": elsewhere})
        ).status_code == 404

    async with stack.client("router", team.tokens[holder]) as client:
        moved = await client.post(f"/api/chats/{chat_ids[0]}/transfer", json={"operator_id": full})
        assert (moved.status_code, moved.json()["operator_id"], moved.json()["status"]) == (200, full, "assigned")
        assert (await client.get(f"/api/chats/{chat_ids[0]}")).status_code == 404
        refused = await client.post(f"/api/chats/{chat_ids[1]}/transfer", json={"operator_id": full})
        assert (refused.status_code, refused.json()["error"]) == (409, "operator_unavailable")  # at capacity
        bad = await client.post(f"/api/chats/{chat_ids[1]}/transfer", json={"operator_id": full, "queue_id": "x"})
        assert bad.status_code == 400
        requeued = await client.post(f"/api/chats/{chat_ids[1]}/transfer", json={"queue_id": second.json()["id"]})
        assert requeued.status_code == 200 and requeued.json()["queue_id"] == second.json()["id"]
    offered = await _routed(db, 1, {"_id": chat_ids[1], "reserved_for": elsewhere})
    assert offered[0]["offered_to"] == [elsewhere]
    loads = {op["_id"]: op["load"] async for op in db.operators.find({})}
    assert loads == {holder: 0, full: 1, elsewhere: 1}
    async with OperatorInbox(settings.amqp_url) as inbox:
        to_holder = [(n["event"], n["data"].get("reason")) for n in await inbox.drain(holder, quiet=0.2)]
        to_full = [(n["event"], n["data"].get("reason")) for n in await inbox.drain(full, quiet=0.1)]
    assert to_holder.count(("chat.revoked", "transferred")) == 2
    assert to_full[-1] == ("chat.assigned", "transferred")


async def test_the_example_rule_offers_chats_to_the_supervisor(stack: Stack, db: Database, settings: Settings) -> None:
    await stack.start("ingress", "router")
    team = await seed_team(stack, rule="to_supervisor", capacities=[5, 5], roles=["operator", "supervisor"])
    await write_in(stack, team, range(1))
    [chat] = await _routed(db, 1)
    assert chat["offered_to"] == [team.operators[1]]
