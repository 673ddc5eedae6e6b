"""Composition root of the router: the only place that constructs adapters. It builds the repositories and
publishers on the service's clients, the use cases on them, the consumers, the sweeps and the HTTP routes."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from pydantic import TypeAdapter
from starlette.applications import Starlette

from omni_contracts import MessageReceived, RouterUpdate
from omni_providers import ProviderRegistry
from omni_router.adapters.broker_publishers import BrokerEvents, BrokerOperatorQueues
from omni_router.adapters.clock import SystemClock
from omni_router.adapters.files import GridFSFiles
from omni_router.adapters.idempotency_keys import MongoIdempotencyKeys
from omni_router.adapters.leftover_inboxes import leftover_inboxes, leftover_queue
from omni_router.adapters.messengers import ProviderMessengers
from omni_router.adapters.mongo_chats import MongoChats
from omni_router.adapters.mongo_contacts import MongoContacts
from omni_router.adapters.mongo_messages import MongoMessages
from omni_router.adapters.mongo_operators import MongoOperators
from omni_router.adapters.mongo_reports import MongoReports
from omni_router.adapters.mongo_settings import CachedRoutingSettings, MongoChannels, MongoQueues
from omni_router.adapters.mongo_tokens import MongoApiTokens, MongoAuditLog
from omni_router.adapters.mongo_workplace import MongoCannedResponses, MongoLabels
from omni_router.adapters.notification_log import MongoNotificationLog
from omni_router.adapters.parking import BrokerParkingLots
from omni_router.adapters.router_instances import MongoRouterInstances
from omni_router.adapters.search_index import MongoSearchIndex
from omni_router.adapters.stream_tickets import MongoStreamTickets
from omni_router.adapters.upgrades import upgrade
from omni_router.adapters.webhooks import DestinationCheck, MongoWebhookDeliveries, MongoWebhookSubscriptions
from omni_router.domain.errors import DomainError
from omni_router.entrypoints import (
    admin_api,
    console_api,
    console_site,
    contacts_api,
    events_api,
    files_api,
    openapi,
    operator_api,
    reports_api,
    supervisor_api,
    tokens_api,
    webhooks_api,
    workplace_api,
)
from omni_router.entrypoints.audit import AuditTrail
from omni_router.entrypoints.consumers import chat_of, moving_home, parking_refusals, update_of
from omni_router.entrypoints.context import Services
from omni_router.entrypoints.errors import domain_error_handler
from omni_router.entrypoints.partitions import Spreader
from omni_router.entrypoints.sweeps import every
from omni_router.routing import RoutingRule, load_rules
from omni_router.service_layer.admin import Admin
from omni_router.service_layer.capacity import Capacity
from omni_router.service_layer.console import Console
from omni_router.service_layer.contacts import ContactCards
from omni_router.service_layer.courtesy import Courtesy
from omni_router.service_layer.desk import Desk
from omni_router.service_layer.engine import Engine
from omni_router.service_layer.inbox import Inbox
from omni_router.service_layer.indexing import Indexer
from omni_router.service_layer.integration_events import IntegrationEvents, Webhooks
from omni_router.service_layer.notices import Notices
from omni_router.service_layer.ports import (
    ApiTokens,
    AuditLog,
    CannedResponses,
    Channels,
    Chats,
    Clock,
    Contacts,
    Destinations,
    Events,
    Files,
    IdempotencyKeys,
    Labels,
    Messages,
    Messengers,
    NotificationLog,
    OperatorQueues,
    Operators,
    ParkingLots,
    Queues,
    Reports,
    RouterInstances,
    RoutingSettings,
    SearchIndex,
    StreamTickets,
    WebhookDeliveries,
    WebhookSubscriptions,
)
from omni_router.service_layer.replies import Replies
from omni_router.service_layer.reports import Supervision
from omni_router.service_layer.streams import PRUNE_EVERY_SECONDS, Hub, Tickets, prune
from omni_router.service_layer.sweeps import sweep_completion, sweep_routing
from omni_router.service_layer.tokens import Audit, Tokens
from omni_router.service_layer.updates import Updates
from omni_router.service_layer.uploads import Uploads
from omni_router.service_layer.workplace import Workplace
from omni_runtime.broker import Broker
from omni_runtime.combining import CombinedBatches
from omni_runtime.consumer import BatchHandler, Batching, Consumer
from omni_runtime.database import Database
from omni_runtime.metrics import Metrics
from omni_runtime.service import ServiceContext, Slot, hosted_app, running
from omni_runtime.settings import Settings
from omni_runtime.topology import ROUTER_UPDATES

SERVICE = "router"
log = logging.getLogger(__name__)

_updates: TypeAdapter[RouterUpdate] = TypeAdapter(RouterUpdate)


@dataclass
class Ports:
    """Every port the use cases are built on: the MongoDB and RabbitMQ adapters here, fakes in the unit tests."""

    clock: Clock
    chats: Chats
    operators: Operators
    queues: Queues
    channels: Channels
    settings: RoutingSettings
    contacts: Contacts
    messages: Messages
    keys: IdempotencyKeys
    notification_log: NotificationLog
    tickets: StreamTickets
    files: Files
    instances: RouterInstances
    operator_queues: OperatorQueues
    events: Events
    messengers: Messengers
    parking: ParkingLots
    labels: Labels
    canned: CannedResponses
    search: SearchIndex
    api_tokens: ApiTokens
    audit_log: AuditLog
    subscriptions: WebhookSubscriptions
    deliveries: WebhookDeliveries
    destinations: Destinations
    reports: Reports


def adapters(
    db: Database, broker: Broker, http: httpx.AsyncClient, registry: ProviderRegistry, allow_private: bool = False
) -> Ports:
    """The router's ports on a service's clients: MongoDB, RabbitMQ, the providers."""
    clock = SystemClock()
    return Ports(
        clock=clock,
        chats=MongoChats(db, clock),
        operators=MongoOperators(db),
        queues=MongoQueues(db),
        channels=MongoChannels(db),
        settings=CachedRoutingSettings(db),
        contacts=MongoContacts(db),
        messages=MongoMessages(db),
        keys=MongoIdempotencyKeys(db),
        notification_log=MongoNotificationLog(db),
        tickets=MongoStreamTickets(db),
        files=GridFSFiles(db),
        instances=MongoRouterInstances(db),
        operator_queues=BrokerOperatorQueues(broker),
        events=BrokerEvents(broker),
        messengers=ProviderMessengers(registry, http),
        parking=BrokerParkingLots(broker),
        labels=MongoLabels(db),
        canned=MongoCannedResponses(db),
        search=MongoSearchIndex(db),
        api_tokens=MongoApiTokens(db),
        audit_log=MongoAuditLog(db),
        subscriptions=MongoWebhookSubscriptions(db),
        deliveries=MongoWebhookDeliveries(db),
        destinations=DestinationCheck(allow_private),
        reports=MongoReports(db),
    )


@dataclass
class Router:
    """The router's use cases, built on one set of ports."""

    ports: Ports
    capacity: Capacity
    notices: Notices
    engine: Engine
    desk: Desk
    replies: Replies
    courtesy: Courtesy
    inbox: Inbox
    updates: Updates
    admin: Admin
    console: Console
    hub: Hub
    tickets: Tickets
    workplace: Workplace
    uploads: Uploads
    contacts: ContactCards
    tokens: Tokens
    audit: Audit
    integration: IntegrationEvents
    webhooks: Webhooks
    supervision: Supervision

    @property
    def services(self) -> Services:
        """What the HTTP endpoints reach."""
        return Services(
            self.desk,
            self.replies,
            self.admin,
            self.console,
            self.hub,
            self.tickets,
            tokens=self.tokens,
            audit=self.audit,
            webhooks=self.webhooks,
            supervision=self.supervision,
            workplace=self.workplace,
            uploads=self.uploads,
            contacts=self.contacts,
        )


def wire(ports: Ports, settings: Settings, rules: Mapping[str, RoutingRule]) -> Router:
    """The use cases on `ports` (the lifespan's adapters, or a test's)."""
    p = ports
    capacity = Capacity(p.operators, p.chats, p.clock)
    integration = IntegrationEvents(p.subscriptions, p.events, p.clock)
    notices = Notices(p.operator_queues, p.notification_log, p.chats, p.operators, p.clock, integration)
    courtesy = Courtesy(
        chats=p.chats,
        contacts=p.contacts,
        messages=p.messages,
        settings=p.settings,
        events=p.events,
        integration=integration,
        clock=p.clock,
    )
    engine = Engine(
        chats=p.chats,
        operators=p.operators,
        queues=p.queues,
        settings=p.settings,
        capacity=capacity,
        notices=notices,
        courtesy=courtesy,
        rules=rules,
        offer_timeout_seconds=settings.offer_timeout_seconds,
        clock=p.clock,
    )
    desk = Desk(
        chats=p.chats, operators=p.operators, messages=p.messages, settings=p.settings, files=p.files, engine=engine
    )
    indexer = Indexer(p.search)
    uploads = Uploads(files=p.files, messages=p.messages, desk=desk, max_bytes=settings.attachment_max_bytes)
    replies = Replies(
        uploads=uploads,
        messengers=p.messengers,
        desk=desk,
        indexer=indexer,
        chats=p.chats,
        messages=p.messages,
        contacts=p.contacts,
        settings=p.settings,
        keys=p.keys,
        events=p.events,
        integration=integration,
        clock=p.clock,
    )
    admin = Admin(
        queues=p.queues,
        operators=p.operators,
        channels=p.channels,
        settings=p.settings,
        operator_queues=p.operator_queues,
        messengers=p.messengers,
        parking=p.parking,
        engine=engine,
        rules=list(rules),
        clock=p.clock,
    )
    inbox = Inbox(
        chats=p.chats,
        contacts=p.contacts,
        messages=p.messages,
        settings=p.settings,
        engine=engine,
        notices=notices,
        courtesy=courtesy,
        events=p.events,
        indexer=indexer,
        integration=integration,
        clock=p.clock,
    )
    workplace = Workplace(
        desk=desk,
        chats=p.chats,
        messages=p.messages,
        contacts=p.contacts,
        queues=p.queues,
        settings=p.settings,
        labels=p.labels,
        canned=p.canned,
        search=p.search,
        indexer=indexer,
        notices=notices,
        clock=p.clock,
    )
    return Router(
        ports=ports,
        capacity=capacity,
        notices=notices,
        engine=engine,
        desk=desk,
        replies=replies,
        courtesy=courtesy,
        inbox=inbox,
        updates=Updates(
            chats=p.chats,
            contacts=p.contacts,
            messages=p.messages,
            notices=notices,
            indexer=indexer,
            integration=integration,
        ),
        admin=admin,
        console=Console(chats=p.chats, queues=p.queues, operators=p.operators, channels=p.channels, clock=p.clock),
        hub=Hub(p.notification_log, p.clock),
        tickets=Tickets(p.tickets, p.operators, p.clock),
        workplace=workplace,
        uploads=uploads,
        contacts=ContactCards(
            contacts=p.contacts,
            chats=p.chats,
            messages=p.messages,
            settings=p.settings,
            indexer=indexer,
            integration=integration,
        ),
        tokens=Tokens(
            tokens=p.api_tokens,
            operators=p.operators,
            admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
            clock=p.clock,
        ),
        audit=Audit(p.audit_log, p.clock),
        integration=integration,
        webhooks=Webhooks(p.subscriptions, p.deliveries, p.destinations, p.clock),
        supervision=Supervision(reports=p.reports, channels=p.channels, queues=p.queues, operators=p.operators),
    )


async def consumers(
    ctx: ServiceContext, router: Router, settings: Settings
) -> tuple[list[Consumer[MessageReceived]], list[Consumer[Any]]]:
    """The input partitions' consumers (in partition order), and all the router's consumers."""
    received = MessageReceived.model_validate_json
    batching, updates = None, None
    if settings.router_batch_size > 1:
        handler, partition_wait = _inbox_batches(router, settings)
        batching = Batching(handler, settings.router_batch_size, partition_wait)
        wait = settings.router_updates_wait_ms / 1000
        updates = Batching(router.updates.apply_batch, settings.router_batch_size, wait)
    inbox = [
        ctx.consumer(
            partition,
            received,
            parking_refusals(router.inbox.receive),
            order_key=chat_of,
            prefetch=settings.router_prefetch,
            batching=batching,
        )
        for partition in ctx.broker.topology.inbox
    ]
    leftovers = await leftover_inboxes(settings.amqp_url, ctx.broker.topology)
    if leftovers:
        log.warning("moving leftover input queues' messages into the partitions", extra={"queues": leftovers})
    others: list[Consumer[Any]] = [
        *(
            ctx.consumer(leftover_queue(name), received, moving_home(router.ports.events), passive=True)
            for name in leftovers
        ),
        ctx.consumer(
            ROUTER_UPDATES,
            _updates.validate_json,
            router.updates.apply,
            order_key=update_of,
            batching=updates,
        ),
    ]
    return inbox, [*inbox, *others]


def _inbox_batches(router: Router, settings: Settings) -> tuple[BatchHandler[MessageReceived], float]:
    """The partitions' batch handler, and how long each partition waits for more before handing its batch in. Their
    batches combined into one `Inbox.receive_batch` call (group commit), up to ROUTER_COMBINED_BATCH_SIZE messages,
    each call taking what came within ROUTER_BATCH_WAIT_MS of the oldest (the partitions hand theirs in at once: a
    partition sees a fraction of the rate, the combined batch all of it); each partition's alone, after its own
    wait, when the combined size is no more than one batch."""
    wait = settings.router_batch_wait_ms / 1000
    if settings.router_combined_batch_size <= settings.router_batch_size:
        return router.inbox.receive_batch, wait
    return CombinedBatches(router.inbox.receive_batch, settings.router_combined_batch_size, linger=wait), 0.0


def sweeps(router: Router, settings: Settings) -> list[tuple[float, Callable[[], Awaitable[object]], str]]:
    """Every timer of the router: how often, what, and its name in logs."""
    routing_every, completion_every = settings.routing_sweep_seconds, settings.completion_sweep_seconds
    replies_every = settings.outbox_sweep_seconds
    return [
        (replies_every, partial(_publish_replies, router.replies, replies_every), "replies"),
        (routing_every, partial(sweep_routing, router.engine, router.notices, routing_every), "routing"),
        (
            completion_every,
            partial(sweep_completion, router.engine, router.capacity, router.courtesy, completion_every),
            "completion",
        ),
        (
            PRUNE_EVERY_SECONDS,
            partial(prune, router.ports.notification_log, router.ports.clock, settings.notification_retention_hours),
            "notifications",
        ),
    ]


async def _publish_replies(replies: Replies, every_seconds: float) -> None:
    count = await replies.publish_due(older_than_seconds=every_seconds)
    if count:
        log.info("the reply outbox published stored replies", extra={"count": count})


def create_app(
    settings: Settings | None = None,
    registry: ProviderRegistry | None = None,
    rules: Mapping[str, RoutingRule] | None = None,
) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics(SERVICE)
    registry = registry or ProviderRegistry.from_entry_points(settings)
    rules = rules or load_rules()

    @asynccontextmanager
    async def start(ctx: ServiceContext) -> AsyncIterator[Services]:
        await upgrade(ctx.db)
        ports = adapters(ctx.db, ctx.broker, ctx.http, registry, settings.allow_private_fetch)
        router = wire(ports, settings, rules)
        inbox, everything = await consumers(ctx, router, settings)
        spreader = Spreader(router.ports.instances, ctx.instance, inbox, settings.router_heartbeat_seconds)
        timers = [asyncio.create_task(every(seconds, job, what)) for seconds, job, what in sweeps(router, settings)]
        timers.append(asyncio.create_task(router.hub.run()))
        try:
            async with running(everything):
                spreading = asyncio.create_task(spreader.run())
                try:
                    yield router.services
                finally:
                    spreading.cancel()  # before the consumers stop: it restarts consumers
                    with contextlib.suppress(asyncio.CancelledError):
                        await spreading
                    with contextlib.suppress(Exception):
                        await spreader.leave()
        finally:
            for timer in timers:
                timer.cancel()
            for timer in timers:
                with contextlib.suppress(asyncio.CancelledError):
                    await timer

    routes = [
        *workplace_api.routes,  # before the admin API's `/api/admin/{kind}`
        *operator_api.routes,
        *files_api.routes,
        *contacts_api.routes,
        *tokens_api.routes,
        *webhooks_api.routes,
        *supervisor_api.routes,
        *reports_api.routes,  # before admin_api's /api/admin/{kind}/{item_id}
        *admin_api.routes,
        *events_api.routes,
        *console_api.routes,
        *console_site.routes,
        openapi.route,
    ]
    app = hosted_app(SERVICE, settings, metrics, start, routes, Slot[Services]())
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_middleware(AuditTrail)
    return app
