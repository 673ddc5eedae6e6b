"""Outbound webhooks through the dispatcher (issue 14 item 4): one `webhook.delivery` per (subscription, event)
on the broker, POSTed signed to the simulator's receiver, retried and parked by the consumer machinery, and every
attempt recorded in `webhook_deliveries`. The router's subscriptions API comes later: subscriptions are written
to the database here as it will write them."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from omni_contracts import WebhookDelivery, WebhookEvent
from omni_providers.signatures import hmac_sha256_signature
from omni_runtime.broker import Broker
from omni_runtime.database import Database, Document
from omni_runtime.ids import new_id
from omni_runtime.parking import list_parked, replay_parked
from omni_runtime.settings import Settings
from omni_runtime.topology import DISPATCHER_WEBHOOKS
from tests.support.outbound import publish
from tests.support.stack import Simulator, Stack, eventually

pytestmark = pytest.mark.e2e

SECRET = "whsec-crm-0123456789"


async def subscribe(db: Database, url: str, secret: str = SECRET) -> str:
    subscription_id = new_id()
    await db.webhook_subscriptions.insert_one(
        {
            "_id": subscription_id,
            "url": url,
            "secret": secret,
            "events": ["chat.created"],
            "created_at": datetime.now(UTC),
        }
    )
    return subscription_id


async def receiver(simulator: Simulator, name: str = "crm") -> str:
    async with simulator.client() as control:
        answer = await control.put(f"/_sim/receivers/{name}", json={"secret": SECRET})
    assert answer.status_code == 200
    return str(answer.json()["url"])


def chat_created(chat_id: str = "chat-1") -> WebhookEvent:
    return WebhookEvent(
        id=new_id(),
        event="chat.created",
        created_at=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
        data={"chat_id": chat_id, "channel_id": "ch-1", "contact": {"id": "ct-1", "name": "Ann Grüne"}},
    )


async def deliver(settings: Settings, subscription_id: str, event: WebhookEvent) -> None:
    await publish(settings, WebhookDelivery(subscription_id=subscription_id, webhook=event))


async def attempts(db: Database, subscription_id: str, settled_count: int) -> list[Document]:
    """The subscription's attempts, once `settled_count` of them ended delivered or failed."""

    async def check() -> list[Document] | None:
        found = [d async for d in db.webhook_deliveries.find({"subscription_id": subscription_id}).sort("attempt", 1)]
        return found if sum(d["outcome"] != "retrying" for d in found) >= settled_count else None

    return await eventually(check, timeout=20)


def summary(attempt: Document) -> tuple[Any, ...]:
    return attempt["attempt"], attempt["status_code"], attempt["outcome"]


async def receiver_state(simulator: Simulator, name: str = "crm") -> dict[str, Any]:
    async with simulator.client() as control:
        state: dict[str, Any] = (await control.get(f"/_sim/receivers/{name}")).json()
    return state


async def test_an_event_is_posted_once_signed_with_its_idempotency_key_and_recorded(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("dispatcher")
    subscription_id = await subscribe(db, await receiver(simulator))
    event = chat_created()
    await deliver(stack.settings, subscription_id, event)

    [attempt] = await attempts(db, subscription_id, 1)
    assert summary(attempt) == (1, 200, "delivered")
    assert (attempt["event_id"], attempt["event"], attempt["error"]) == (event.id, "chat.created", None)
    [request] = simulator.state.select("/receivers/crm")
    expected = {
        "id": event.id,
        "event": "chat.created",
        "created_at": "2026-03-10T12:00:00Z",
        "data": {"chat_id": "chat-1", "channel_id": "ch-1", "contact": {"id": "ct-1", "name": "Ann Grüne"}},
    }
    assert json.loads(request.raw) == expected
    assert request.headers["x-omni-signature"] == hmac_sha256_signature(SECRET, request.raw.encode())
    assert request.signature_valid is True
    assert (request.headers["idempotency-key"], request.headers["x-omni-event"]) == (event.id, "chat.created")
    assert request.headers["content-type"] == "application/json"
    assert (await receiver_state(simulator))["events"] == [expected]


async def test_500s_and_a_timeout_are_retried_and_the_receiver_takes_the_event_once(
    stack: Stack, db: Database, simulator: Simulator
) -> None:
    await stack.start("dispatcher")
    subscription_id = await subscribe(db, await receiver(simulator))
    # Twice a 500, then an answer slower than the dispatcher waits (HTTP_TIMEOUT_SECONDS is 2 in tests).
    await simulator.fault(path_prefix="/receivers/crm", status=500, count=2)
    await simulator.fault(path_prefix="/receivers/crm", delay=3.0, count=1)
    event = chat_created()
    await deliver(stack.settings, subscription_id, event)

    found = await attempts(db, subscription_id, 1)
    assert [summary(a) for a in found] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, None, "retrying"),
        (4, 200, "delivered"),
    ]
    assert found[0]["error"].startswith("webhook receiver 127.0.0.1 answered 500")
    assert found[2]["error"] == "webhook receiver 127.0.0.1 timed out"
    state = await receiver_state(simulator)
    # The slow answer's event had arrived: the retry under the same Idempotency-Key is recognised, not taken again.
    assert len(state["events"]) == 1 and state["replays"] == 1
    assert state["attempts"] == {event.id: 4}


async def test_a_receiver_that_keeps_failing_is_parked_its_last_attempt_failed_and_a_replay_delivers(
    stack: Stack, db: Database, simulator: Simulator, broker: Broker
) -> None:
    await stack.start("dispatcher")
    subscription_id = await subscribe(db, await receiver(simulator))
    await simulator.fault(path_prefix="/receivers/crm", status=503)
    await deliver(stack.settings, subscription_id, chat_created())

    found = await attempts(db, subscription_id, 1)
    assert [a["outcome"] for a in found] == ["retrying"] * (len(found) - 1) + ["failed"]
    assert len(found) >= stack.settings.max_attempts  # every wait-queue attempt, and the quick retries within
    assert found[-1]["error"].startswith(f"gave up after {stack.settings.max_attempts} attempts: ")
    [parked] = await eventually(lambda: list_parked(broker, DISPATCHER_WEBHOOKS.name))
    assert parked.body["subscription_id"] == subscription_id and "secret" not in json.dumps(parked.body)

    async with simulator.client() as control:
        assert (await control.delete("/_sim/faults")).status_code == 204
    assert await replay_parked(broker, DISPATCHER_WEBHOOKS.name) == 1
    after = await attempts(db, subscription_id, 2)
    assert summary(after[-1]) == (len(found) + 1, 200, "delivered")
    assert len((await receiver_state(simulator))["events"]) == 1


async def test_private_and_deleted_targets_are_never_called(
    stack: Stack, db: Database, simulator: Simulator, broker: Broker
) -> None:
    stack.settings = stack.settings.model_copy(update={"allow_private_fetch": False})
    await stack.start("dispatcher")
    loopback = await subscribe(db, await receiver(simulator))
    deleted = new_id()
    await deliver(stack.settings, loopback, chat_created())
    await deliver(stack.settings, deleted, chat_created())
    [refused] = await attempts(db, loopback, 1)
    assert summary(refused) == (1, None, "failed")
    assert refused["error"].startswith("refused to call 127.0.0.1: 127.0.0.1 is a loopback address")
    [gone] = await attempts(db, deleted, 1)
    assert (summary(gone), gone["error"]) == ((1, None, "failed"), "the subscription is deleted")
    assert simulator.state.select("/receivers/") == []
    parked = await eventually(lambda: list_parked(broker, DISPATCHER_WEBHOOKS.name))
    assert [p.body["subscription_id"] for p in parked] == [loopback]  # a deleted subscription is not parked


async def test_a_4xx_answer_fails_the_delivery_at_once(stack: Stack, db: Database, simulator: Simulator) -> None:
    """A 4xx is the receiver's answer, not trouble: failed at once, parked for a replay once it is fixed."""
    await stack.start("dispatcher")
    subscription_id = await subscribe(db, await receiver(simulator))
    await simulator.fault(path_prefix="/receivers/crm", status=410, count=1, body="endpoint retired")
    await deliver(stack.settings, subscription_id, chat_created())
    [attempt] = await attempts(db, subscription_id, 1)
    assert summary(attempt) == (1, 410, "failed")
    assert attempt["error"] == "webhook receiver 127.0.0.1 answered 410: endpoint retired"
    assert len(simulator.state.select("/receivers/crm")) == 1
    # Signed with the subscription's own secret: a receiver that holds another one refuses it.
    other = await subscribe(db, await receiver(simulator), secret="whsec-not-the-receivers")
    await deliver(stack.settings, other, chat_created())
    [unverified] = await attempts(db, other, 1)
    assert summary(unverified) == (1, 401, "failed") and "bad_signature" in unverified["error"]
