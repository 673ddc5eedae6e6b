"""Profiles: each new sender's contact is named from the webhook, the messenger's profile, or the reference's fallback."""

from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from omni_contracts import ProfileRequested, ProfileResolved
from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from omni_runtime.topology import EVENTS_EXCHANGE
from tests.support.seed import Desk, customer_message, seed_desk
from tests.support.stack import Stack, eventually, signed

pytestmark = pytest.mark.integration


class Resolutions:
    """What the profiles service tells the router: every `profile.resolved` event, on a queue of the test's own."""

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def __aenter__(self) -> "Resolutions":
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        self._exchange = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        self._queue = await channel.declare_queue(exclusive=True)
        await self._queue.bind(self._exchange, "profile.resolved")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def next(self) -> ProfileResolved:
        assert self._queue is not None
        queue = self._queue
        message = await eventually(lambda: queue.get(no_ack=True, fail=False))
        return ProfileResolved.model_validate_json(message.body)

    async def pending(self) -> int:
        assert self._queue is not None
        declared = await self._queue.channel.declare_queue(self._queue.name, passive=True)
        return int(declared.declaration_result.message_count or 0)

    async def request(self, event: ProfileRequested) -> None:
        assert self._exchange is not None
        await self._exchange.publish(aio_pika.Message(event.model_dump_json().encode()), routing_key=event.kind)


@pytest.fixture
async def resolutions(settings: Settings) -> AsyncIterator[Resolutions]:
    async with Resolutions(settings.amqp_url) as running:
        yield running


async def send(stack: Stack, desk: Desk, body: dict[str, Any]) -> None:
    raw, headers = signed(body, desk.secret)
    async with stack.client("ingress") as ingress:
        answer = await ingress.post(f"/webhooks/{desk.provider}/receive", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text


async def resolved_contact(db: Database, sender: str) -> Document:
    """The contact of `sender` once the router has applied its ProfileResolved."""
    return await eventually(lambda: db.contacts.find_one({"external_id": sender, "profile_status": "resolved"}))


async def test_the_sender_name_of_the_webhook_names_the_contact(
    stack: Stack, db: Database, resolutions: Resolutions
) -> None:
    await stack.start("ingress", "router", "profiles")
    desk = await seed_desk(stack, operators=1)
    await send(stack, desk, customer_message("m-1", sender="cust-1", sender_name="Ann Customer"))

    resolved = await resolutions.next()
    assert (resolved.name, resolved.photo_url) == ("Ann Customer", None)
    contact = await resolved_contact(db, "cust-1")
    assert resolved.contact_id == contact["_id"]
    assert contact["name"] == "Ann Customer"
    chat = await db.chats.find_one({"contact_id": contact["_id"]})
    assert chat is not None and chat["contact_name"] == "Ann Customer"


async def test_without_a_sender_name_the_contact_gets_the_fallback_name(
    stack: Stack, db: Database, resolutions: Resolutions
) -> None:
    await stack.start("ingress", "router", "profiles")
    desk = await seed_desk(stack, operators=1)
    await send(stack, desk, customer_message("m-1", sender="cust-7", sender_name=None))

    resolved = await resolutions.next()
    assert resolved.name == "New contact Acme chat-cust-7"
    contact = await resolved_contact(db, "cust-7")
    assert contact["name"] == "New contact Acme chat-cust-7"
