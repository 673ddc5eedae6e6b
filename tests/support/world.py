"""A router's use cases on one set of ports, and what a behaviour test does with them: an admin creating queues,
operators and channels, customers writing in, time passing, and what each operator was told.

`fake_world()` runs on the in-memory fakes (tests/unit); `mongo_world(db)` on the MongoDB repositories with the
same fakes for the broker and the messengers (tests/integration), so one test, written once, checks both. The world
fixture is parametrized by the kinds a test directory runs (`world_fixture("fake")`, `world_fixture("mongo")`).
"""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal
from uuid import uuid4

import pytest
from pymongo import AsyncMongoClient

from omni_contracts import ChatNotification, MessageReceived, UnifiedMessage
from omni_router.adapters.idempotency_keys import MongoIdempotencyKeys
from omni_router.adapters.mongo_chats import MongoChats
from omni_router.adapters.mongo_contacts import MongoContacts
from omni_router.adapters.mongo_messages import MongoMessages
from omni_router.adapters.mongo_operators import MongoOperators
from omni_router.adapters.mongo_reports import MongoReports
from omni_router.adapters.mongo_settings import CachedRoutingSettings, MongoChannels, MongoQueues
from omni_router.adapters.mongo_tokens import MongoApiTokens, MongoAuditLog
from omni_router.adapters.mongo_workplace import MongoCannedResponses, MongoLabels
from omni_router.adapters.notification_log import MongoNotificationLog
from omni_router.adapters.search_index import MongoSearchIndex
from omni_router.adapters.stream_tickets import MongoStreamTickets
from omni_router.adapters.webhooks import MongoWebhookDeliveries, MongoWebhookSubscriptions
from omni_router.bootstrap import Ports, Router, wire
from omni_router.domain.admin import ChannelSettings, OperatorSettings, QueueSettings
from omni_router.domain.model import Channel, Chat, Message, Operator, Queue, dedupe_key
from omni_router.routing import load_rules
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.settings import Settings
from tests.support.fakes import (
    FakeApiTokens,
    FakeAuditLog,
    FakeCannedResponses,
    FakeChannels,
    FakeChats,
    FakeClock,
    FakeContacts,
    FakeDestinations,
    FakeEvents,
    FakeFiles,
    FakeIdempotencyKeys,
    FakeLabels,
    FakeMessages,
    FakeMessengers,
    FakeNotificationLog,
    FakeOperatorQueues,
    FakeOperators,
    FakeParkingLots,
    FakeQueues,
    FakeReports,
    FakeRouterInstances,
    FakeRoutingSettings,
    FakeSearchIndex,
    FakeStreamTickets,
    FakeWebhookDeliveries,
    FakeWebhookSubscriptions,
)

OFFER_TIMEOUT_SECONDS = 60.0
ADMIN_TOKEN = "admin-token-for-tests"


@dataclass
class World:
    kind: str
    router: Router
    clock: FakeClock
    operator_queues: FakeOperatorQueues
    events: FakeEvents
    files: FakeFiles
    messengers: FakeMessengers
    parking: FakeParkingLots

    # Setting up, as an admin does -------------------------------------------------------------------------------

    async def operator(
        self,
        name: str = "op",
        *,
        max_chats: int = 5,
        role: Literal["operator", "supervisor"] = "operator",
        online: bool = True,
    ) -> Operator:
        """An operator (online unless told otherwise), created a moment after the previous one."""
        self.clock.advance(0.001)
        operator, _ = await self.router.admin.create_operator(
            OperatorSettings(name=name, max_chats=max_chats, role=role)
        )
        if online:
            await self.router.desk.set_status(operator, "online")
        return await self.fresh(operator)

    async def queue(self, rule: str, operators: list[Operator], **settings: Any) -> Queue:
        body = QueueSettings(name="support", routing_rule=rule, operator_ids=[op.id for op in operators], **settings)
        return await self.router.admin.create_queue(body)

    async def channel(
        self, queue: Queue, source: str | None = None, provider: str = "acme", **more_settings: Any
    ) -> Channel:
        settings = {"secret": "s3cret", "outgoing_url": "https://shop.example/replies", **more_settings}
        source = source or f"bot-{queue.id}"
        body = ChannelSettings(name="Shop", provider=provider, source=source, queue_id=queue.id, settings=settings)
        return await self.router.admin.create_channel(body)

    async def team(self, rule: str, capacities: list[int], **settings: Any) -> tuple[Queue, Channel, list[Operator]]:
        """A queue with `rule`, one online operator per capacity, and a channel into it."""
        operators = [await self.operator(f"op{n}", max_chats=c) for n, c in enumerate(capacities)]
        queue = await self.queue(rule, operators, **settings)
        return queue, await self.channel(queue), operators

    # Customers, operators and time --------------------------------------------------------------------------------

    async def write(
        self,
        channel: Channel,
        sender: str = "cust-1",
        text: str = "hello",
        *,
        message_id: str | None = None,
        **more: Any,
    ) -> Chat:
        """A customer's message handled as the router's input consumer hands it over; answers its chat."""
        message = self.message(channel, sender, text, message_id=message_id, **more).message
        await self.router.inbox.receive(MessageReceived(message=message))
        stored = await self.router.ports.messages.incoming(dedupe_key(channel.id, message.provider_message_id))
        assert stored is not None and stored.routed
        return await self.chat(stored.chat_id)

    def message(
        self,
        channel: Channel,
        sender: str = "cust-1",
        text: str = "hello",
        *,
        message_id: str | None = None,
        **more: Any,
    ) -> MessageReceived:
        """A customer's message as ingress publishes it, a moment after the previous one."""
        self.clock.advance(0.001)
        message = UnifiedMessage(
            provider=channel.provider,
            channel_id=channel.id,
            provider_message_id=message_id or uuid4().hex,
            sender=sender,
            recipient=channel.source,
            sent_at=self.clock.now(),
            text=text,
            **more,
        )
        return MessageReceived(message=message)

    async def write_batch(self, batch: list[MessageReceived]) -> set[int]:
        """A batch handled as a partition's consumer in batch mode hands it over: to `receive_batch`, then what that
        left to `receive`, one by one in order; answers the positions left."""
        left = await self.router.inbox.receive_batch(batch)
        for position in sorted(left):
            await self.router.inbox.receive(batch[position])
        return left

    async def chat(self, chat_id: str) -> Chat:
        chat = await self.router.ports.chats.get(chat_id)
        assert chat is not None
        return chat

    async def fresh(self, operator: Operator) -> Operator:
        found = await self.router.ports.operators.get(operator.id)
        assert found is not None
        return found

    async def reply(self, chat: Chat, operator: Operator, text: str = "on it", **more: Any) -> Message:
        message, _ = await self.router.replies.send(chat.id, await self.fresh(operator), text, [], **more)
        return message

    async def later(self, seconds: float) -> None:
        """Time passes and the routing sweep runs, as each router's timer runs it."""
        self.clock.advance(seconds)
        await self.router.engine.expire_offers()
        await self.router.engine.withdraw_from_offline()
        await self.router.engine.dispatch_all()

    # What operators were told -------------------------------------------------------------------------------------

    def told(self, operator: Operator, *kinds: str) -> list[ChatNotification]:
        notes = self.operator_queues.queues.get(operator.id, [])
        return [n for n in notes if not kinds or n.event in kinds]

    def events_about(self, chat: Chat, operator: Operator) -> list[tuple[str, Any]]:
        """(event, reason or None) of every notification the operator got about the chat, in order."""
        return [(n.event, n.data.get("reason")) for n in self.told(operator) if n.chat_id == chat.id]


def settings() -> Settings:
    return Settings(offer_timeout_seconds=OFFER_TIMEOUT_SECONDS, admin_token=ADMIN_TOKEN)


def _world(
    kind: str,
    clock: FakeClock,
    ports: Callable[[FakeOperatorQueues, FakeEvents, FakeFiles, FakeMessengers, FakeParkingLots], Ports],
) -> World:
    queues, events, files, messengers, parking = (
        FakeOperatorQueues(),
        FakeEvents(),
        FakeFiles(),
        FakeMessengers(),
        FakeParkingLots(),
    )
    router = wire(ports(queues, events, files, messengers, parking), settings(), load_rules())
    return World(kind, router, clock, queues, events, files, messengers, parking)


def fake_world() -> World:
    clock = FakeClock()
    queue_store, channels = FakeQueues(), FakeChannels()

    def ports(
        operator_queues: FakeOperatorQueues,
        events: FakeEvents,
        files: FakeFiles,
        messengers: FakeMessengers,
        parking: FakeParkingLots,
    ) -> Ports:
        return Ports(
            clock=clock,
            chats=(chats := FakeChats(clock)),
            operators=FakeOperators(),
            queues=queue_store,
            channels=channels,
            settings=FakeRoutingSettings(queue_store, channels),
            contacts=FakeContacts(),
            messages=FakeMessages(),
            keys=FakeIdempotencyKeys(),
            notification_log=FakeNotificationLog(clock),
            tickets=FakeStreamTickets(),
            files=files,
            instances=FakeRouterInstances(),
            operator_queues=operator_queues,
            events=events,
            messengers=messengers,
            parking=parking,
            labels=FakeLabels(),
            canned=FakeCannedResponses(),
            search=FakeSearchIndex(),
            api_tokens=FakeApiTokens(),
            audit_log=FakeAuditLog(),
            subscriptions=FakeWebhookSubscriptions(),
            deliveries=FakeWebhookDeliveries(),
            destinations=FakeDestinations(),
            reports=FakeReports(chats),
        )

    return _world("fake", clock, ports)


def mongo_world(db: Database) -> World:
    """The MongoDB repositories, with the fakes for what is not stored (the broker, the providers, GridFS)."""
    clock = FakeClock()

    def ports(
        operator_queues: FakeOperatorQueues,
        events: FakeEvents,
        files: FakeFiles,
        messengers: FakeMessengers,
        parking: FakeParkingLots,
    ) -> Ports:
        return Ports(
            clock=clock,
            chats=MongoChats(db, clock),
            operators=MongoOperators(db),
            queues=MongoQueues(db),
            channels=MongoChannels(db),
            settings=_Uncached(db),
            contacts=MongoContacts(db),
            messages=MongoMessages(db),
            keys=MongoIdempotencyKeys(db),
            notification_log=MongoNotificationLog(db),
            tickets=MongoStreamTickets(db),
            files=files,
            instances=FakeRouterInstances(),
            operator_queues=operator_queues,
            events=events,
            messengers=messengers,
            parking=parking,
            labels=MongoLabels(db),
            canned=MongoCannedResponses(db),
            search=MongoSearchIndex(db),
            api_tokens=MongoApiTokens(db),
            audit_log=MongoAuditLog(db),
            subscriptions=MongoWebhookSubscriptions(db, ttl_seconds=0),
            deliveries=MongoWebhookDeliveries(db),
            destinations=FakeDestinations(),
            reports=MongoReports(db),
        )

    return _world("mongo", clock, ports)


class _Uncached(CachedRoutingSettings):
    """The settings adapter, forgetting after every read: a test changes queues between steps as an admin on
    another router would, and the cache's 2 s are tested on their own (tests/integration/test_routing_store.py)."""

    async def _read(self, collection: str, item_id: str) -> Document | None:
        self.forget()
        return await super()._read(collection, item_id)


def world_fixture(*kinds: Any) -> Any:
    """The `world` fixture for `kinds` ("fake", "mongo"; pytest.param to mark one)."""

    @pytest.fixture(params=kinds)
    async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
        if request.param == "fake":
            yield fake_world()
            return
        infra = request.getfixturevalue("infra")
        client: AsyncMongoClient[Document] = AsyncMongoClient(f"{infra.mongo_base}/w{uuid4().hex[:16]}", tz_aware=True)
        db = client.get_default_database()
        await ensure_indexes(db)
        try:
            yield mongo_world(db)
        finally:
            await client.drop_database(db.name)
            await client.close()

    return world
