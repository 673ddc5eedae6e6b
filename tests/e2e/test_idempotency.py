"""`Idempotency-Key` on operator replies: a repeat within 24 h answers the first answer again, stores one message and
makes one delivery, also when the repeats race; keys are per operator; a key cannot be reused for another reply."""

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from omni_runtime.database import Database, Document
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import Simulator, Stack, eventually, signed

pytestmark = pytest.mark.e2e


async def _open_chats(stack: Stack, db: Database, simulator: Simulator, chats: int = 1) -> tuple[Desk, list[str]]:
    """`chats` customer chats on a channel that delivers to the simulator, offered to two online operators; the
    first operator holds the first chat, the second the second."""
    await stack.start("ingress", "router", "dispatcher")
    desk = await seed_desk(stack, operators=2, outgoing_url=f"{simulator.url}/thirdparty/acme/outgoing")
    chat_ids: list[str] = []
    async with stack.client("ingress") as ingress:
        for n in range(chats):
            raw, headers = signed(customer_message(f"in-{n}", sender=f"cust-{n}"), desk.secret)
            assert (await ingress.post("/webhooks/acme/receive", content=raw, headers=headers)).status_code == 200
            routed = {"provider_message_id": f"in-{n}", "routed": True}
            stored = await eventually(partial(db.messages.find_one, routed))
            chat_ids.append(stored["chat_id"])
    for chat_id, token in zip(chat_ids, desk.operators.values(), strict=False):
        async with stack.client("router", token) as client:
            assert (await client.post(f"/api/chats/{chat_id}/accept")).status_code == 200
    return desk, chat_ids


async def _post(client: httpx.AsyncClient, chat_id: str, key: str | None, text: str = "On its way") -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await client.post(f"/api/chats/{chat_id}/messages", json={"text": text}, headers=headers)


async def _sent(db: Database, message_id: str) -> Document:
    return await eventually(lambda: db.messages.find_one({"_id": message_id, "status": "sent"}), timeout=30)


async def _replies(db: Database, chat_id: str) -> list[Document]:
    return [m async for m in db.messages.find({"chat_id": chat_id, "direction": "outgoing"})]


def _arrivals(simulator: Simulator) -> dict[str, int]:
    """Sends that reached the messenger per reply id, repeats its Idempotency-Key dropped included."""
    counts: dict[str, int] = {}
    for request in simulator.state.select("/thirdparty/"):
        if request.message_id:
            counts[request.message_id] = counts.get(request.message_id, 0) + 1
    return counts


async def test_a_repeat_answers_the_first_answer_and_stores_and_sends_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    desk, [chat_id] = await _open_chats(stack, db, simulator)
    token = next(iter(desk.operators.values()))
    async with stack.client("router", token) as client:
        first = await _post(client, chat_id, "reply-7f3a")
        assert first.status_code == 202 and "idempotent-replayed" not in first.headers
        await _sent(db, first.json()["id"])
        again = await _post(client, chat_id, "reply-7f3a")  # after it was sent: the answer is still the first one
        later = await _post(client, chat_id, "reply-7f3a")
        await asyncio.sleep(1.0)  # room for a second delivery, were there one

    assert (again.status_code, again.json()) == (later.status_code, later.json()) == (202, first.json())
    assert first.json() == {"id": first.json()["id"], "status": "queued"}
    assert again.headers["idempotent-replayed"] == "true"
    assert [m["_id"] for m in await _replies(db, chat_id)] == [first.json()["id"]]
    assert _arrivals(simulator) == {first.json()["id"]: 1}


async def test_racing_repeats_store_one_reply_and_all_answer_it(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    desk, [chat_id] = await _open_chats(stack, db, simulator)
    token = next(iter(desk.operators.values()))
    async with stack.client("router", token) as client:
        answers = await asyncio.gather(*(_post(client, chat_id, "double-click") for _ in range(8)))
        [reply] = {(a.status_code, a.json()["id"], a.json()["status"]) for a in answers}
        await _sent(db, reply[1])
        await asyncio.sleep(1.0)

    assert reply[0] == 202 and reply[2] == "queued"
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    assert [m["_id"] for m in await _replies(db, chat_id)] == [reply[1]]
    assert _arrivals(simulator) == {reply[1]: 1}


async def test_keys_are_per_operator_and_one_key_is_one_reply(stack: Stack, db: Database, simulator: Simulator) -> None:
    desk, chat_ids = await _open_chats(stack, db, simulator, chats=2)
    answers: dict[str, Any] = {}
    for (operator_id, token), chat_id in zip(desk.operators.items(), chat_ids, strict=True):
        async with stack.client("router", token) as client:
            answers[operator_id] = await _post(client, chat_id, "same-key")
    [(first_op, first), (_, second)] = answers.items()
    assert first.status_code == second.status_code == 202 and first.json()["id"] != second.json()["id"]

    async with stack.client("router", desk.operators[first_op]) as client:
        other_text = await _post(client, chat_ids[0], "same-key", text="Something else")
        other_chat = await _post(client, chat_ids[1], "same-key")
        unkeyed = [await _post(client, chat_ids[0], None) for _ in range(2)]
        bad_key = await _post(client, chat_ids[0], "a key with spaces")
        await _sent(db, first.json()["id"])
        await _sent(db, second.json()["id"])

    assert other_text.status_code == 422 and other_text.json()["error"] == "idempotency_key_reused"
    assert other_chat.status_code == 422 and other_chat.json()["error"] == "idempotency_key_reused"
    assert [a.status_code for a in unkeyed] == [202, 202] and unkeyed[0].json()["id"] != unkeyed[1].json()["id"]
    assert bad_key.status_code == 400 and bad_key.json()["error"] == "invalid_idempotency_key"
    stored = [m["_id"] for chat_id in chat_ids for m in await _replies(db, chat_id)]
    assert sorted(stored) == sorted([first.json()["id"], second.json()["id"], *(a.json()["id"] for a in unkeyed)])


async def test_a_refused_request_claims_nothing_and_a_key_expires_after_24_hours(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    desk, [chat_id] = await _open_chats(stack, db, simulator)
    operator_id, token = next(iter(desk.operators.items()))
    async with stack.client("router", token) as client:
        refused = await client.post(
            f"/api/chats/{chat_id}/messages", json={"text": " "}, headers={"Idempotency-Key": "k-1"}
        )
        fixed = await _post(client, chat_id, "k-1", text="Fixed")
        assert (refused.status_code, fixed.status_code) == (400, 202)

        # The key's first use 25 hours ago (replaced whole: the stand-in stores a date given to `$set` as text).
        claim = await db.idempotency_keys.find_one({"_id": f"{operator_id}:k-1"})
        assert claim is not None and claim["message_id"] == fixed.json()["id"]
        await db.idempotency_keys.replace_one(
            {"_id": claim["_id"]}, {**claim, "created_at": datetime.now(UTC) - timedelta(hours=25)}
        )
        after_a_day = await _post(client, chat_id, "k-1", text="Fixed")
        await _sent(db, after_a_day.json()["id"])

    assert after_a_day.status_code == 202 and after_a_day.json()["id"] != fixed.json()["id"]
    assert "idempotent-replayed" not in after_a_day.headers
    assert len(await _replies(db, chat_id)) == 2
