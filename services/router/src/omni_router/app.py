"""Composition root of the router: the store, the rules, the consumers, the operator and admin APIs."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from pydantic import TypeAdapter
from starlette.applications import Starlette

from omni_contracts import MessageReceived, RouterUpdate
from omni_providers import ProviderRegistry
from omni_router.admin_api import Admin, admin_routes
from omni_router.capacity import Capacity, ensure_capacity_fields
from omni_router.console_api import console_api_routes
from omni_router.console_site import console_routes
from omni_router.desk import Desk
from omni_router.events_api import events_routes
from omni_router.files_api import file_routes
from omni_router.inbox import receive_message
from omni_router.notifications import PRUNE_EVERY_SECONDS, Hub, prune
from omni_router.notify import Notifier
from omni_router.offers import Offers
from omni_router.operator_api import operator_routes
from omni_router.outbox import run_sweeper
from omni_router.partitions import Spreader, chat_of, leftover_inboxes, leftover_queue, move_home
from omni_router.routing import RoutingRule, load_rules
from omni_router.store import ChatStore
from omni_router.timers import every, sweep_completion, sweep_routing
from omni_router.updates import apply_update
from omni_runtime.metrics import Metrics
from omni_runtime.service import ServiceContext, Slot, open_service, running
from omni_runtime.settings import Settings
from omni_runtime.topology import ROUTER_UPDATES
from omni_runtime.web import ReadyCheck, health_routes, service_app

SERVICE = "router"
log = logging.getLogger(__name__)

_updates: TypeAdapter[RouterUpdate] = TypeAdapter(RouterUpdate)


@dataclass
class Router:
    ctx: ServiceContext
    desk: Desk
    admin: Admin
    hub: Hub


def create_app(
    settings: Settings | None = None,
    registry: ProviderRegistry | None = None,
    rules: dict[str, RoutingRule] | None = None,
) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics(SERVICE)
    registry = registry or ProviderRegistry.from_entry_points(settings)
    rules = rules or load_rules()
    slot: Slot[Router] = Slot()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_service(SERVICE, settings, metrics) as ctx:
            store = ChatStore(ctx.db)
            notifier = Notifier(ctx.broker, ctx.db)
            capacity = Capacity(ctx.db)
            await ensure_capacity_fields(ctx.db)
            await store.backfill_waiting_line()
            offers = Offers(store, capacity, notifier, rules, settings.offer_timeout_seconds)
            desk = Desk(store, offers, notifier, ctx.broker)
            received = MessageReceived.model_validate_json
            inbox = [
                ctx.consumer(
                    partition,
                    received,
                    partial(receive_message, store=store, offers=offers, broker=ctx.broker),
                    order_key=chat_of,
                    prefetch=settings.router_prefetch,
                )
                for partition in ctx.broker.topology.inbox
            ]
            leftovers = await leftover_inboxes(settings.amqp_url, ctx.broker.topology)
            if leftovers:
                log.warning("moving leftover input queues' messages into the partitions", extra={"queues": leftovers})
            consumers = [
                *inbox,
                *(
                    ctx.consumer(leftover_queue(name), received, partial(move_home, broker=ctx.broker), passive=True)
                    for name in leftovers
                ),
                ctx.consumer(
                    ROUTER_UPDATES,
                    _updates.validate_json,
                    partial(apply_update, db=ctx.db, notifier=notifier),
                ),
            ]
            spreader = Spreader(ctx.db, ctx.broker, ctx.instance, inbox, settings.router_heartbeat_seconds)
            hub = Hub(ctx.db)
            slot.set(Router(ctx, desk, Admin(ctx.db, ctx.broker, registry, rules, ctx.http, offers), hub))
            routing_every, completion_every = settings.routing_sweep_seconds, settings.completion_sweep_seconds
            sweeps = [
                asyncio.create_task(run_sweeper(desk, settings.outbox_sweep_seconds)),
                asyncio.create_task(
                    every(routing_every, partial(sweep_routing, offers, notifier, routing_every), "routing")
                ),
                asyncio.create_task(
                    every(completion_every, partial(sweep_completion, offers, capacity, completion_every), "completion")
                ),
                asyncio.create_task(hub.run()),
                asyncio.create_task(
                    every(
                        PRUNE_EVERY_SECONDS,
                        partial(prune, ctx.db, settings.notification_retention_hours),
                        "notifications",
                    )
                ),
            ]
            try:
                async with running(consumers):
                    spreading = asyncio.create_task(spreader.run())
                    try:
                        yield
                    finally:
                        spreading.cancel()  # before the consumers stop: it restarts consumers
                        with contextlib.suppress(asyncio.CancelledError):
                            await spreading
                        with contextlib.suppress(Exception):
                            await spreader.leave()
            finally:
                for sweep in sweeps:
                    sweep.cancel()
                for sweep in sweeps:
                    with contextlib.suppress(asyncio.CancelledError):
                        await sweep
                slot.set(None)

    def checks() -> dict[str, ReadyCheck]:
        current = slot.peek()
        return current.ctx.ready_checks() if current else {}

    routes = [
        *health_routes(checks, metrics),
        *operator_routes(lambda: slot.get().desk),
        *file_routes(lambda: slot.get().desk),
        *admin_routes(lambda: slot.get().admin, settings.admin_token),
        *events_routes(lambda: slot.get().hub),
        *console_api_routes(lambda: slot.get().desk),
        *console_routes(),
    ]
    return service_app(routes, lifespan)
