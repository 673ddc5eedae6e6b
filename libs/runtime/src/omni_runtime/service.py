"""The long-lived clients a service holds, opened and closed together, and the process entry point."""

import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from omni_runtime.broker import Broker
from omni_runtime.consumer import Batching, Consumer, Handler, ParkHook, Recorder
from omni_runtime.database import Database, Document, ensure_indexes, open_database, ping
from omni_runtime.ids import new_id
from omni_runtime.logs import configure_logging
from omni_runtime.metrics import Metrics
from omni_runtime.settings import Settings
from omni_runtime.topology import QueueDef, Topology
from omni_runtime.web import ApiError, ReadyCheck, Server, health_routes, server_config, service_app

log = logging.getLogger(__name__)

M = TypeVar("M")
T = TypeVar("T")


class Slot(Generic[T]):
    """Holds what the lifespan opened, for the routes; empty before start and after stop."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, value: T | None) -> None:
        self._value = value

    def peek(self) -> T | None:
        return self._value

    def get(self) -> T:
        if self._value is None:
            raise ApiError(503, "not_ready", "the service is starting or stopping")
        return self._value


def configured_consumer(
    broker: Broker,
    settings: Settings,
    metrics: Metrics,
    queue: QueueDef,
    parse: Callable[[bytes], M],
    handler: Handler[M],
    on_park: ParkHook[M] | None = None,
    *,
    record: Recorder[M] | None = None,
    order_key: Callable[[M], str] | None = None,
    prefetch: int | None = None,
    passive: bool = False,
    batching: Batching[M] | None = None,
) -> Consumer[M]:
    """A consumer of `queue` (declared as the topology says; `passive`: as it exists) with the settings' retry
    schedule, prefetch and delivery limit; `parse` turns the body into a contract; `order_key`: messages with the
    same key go one at a time, in delivery order; `record` writes down what a handler did but reported Unrecorded;
    `batching`: batch mode (with an `order_key`)."""
    return Consumer(
        broker,
        queue if passive else broker.topology.consumer(queue),
        parse,
        handler,
        delays_ms=settings.retry_delays_ms,
        max_attempts=settings.max_attempts,
        prefetch=prefetch or settings.prefetch,
        metrics=metrics,
        on_park=on_park,
        record=record,
        delivery_limit=settings.delivery_limit,
        order_key=order_key,
        passive=passive,
        batching=batching,
    )


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    metrics: Metrics
    broker: Broker
    mongo: AsyncMongoClient[Document]
    db: Database
    http: httpx.AsyncClient
    instance: str  # this process's run of the service, e.g. in its broker connection's name

    def consumer(
        self,
        queue: QueueDef,
        parse: Callable[[bytes], M],
        handler: Handler[M],
        on_park: ParkHook[M] | None = None,
        *,
        record: Recorder[M] | None = None,
        order_key: Callable[[M], str] | None = None,
        prefetch: int | None = None,
        passive: bool = False,
        batching: Batching[M] | None = None,
    ) -> Consumer[M]:
        """A consumer of `queue` with this service's settings (see `configured_consumer`)."""
        return configured_consumer(
            self.broker,
            self.settings,
            self.metrics,
            queue,
            parse,
            handler,
            on_park,
            record=record,
            order_key=order_key,
            prefetch=prefetch,
            passive=passive,
            batching=batching,
        )

    def ready_checks(self) -> dict[str, ReadyCheck]:
        async def broker() -> bool:
            return self.broker.connected

        async def database() -> bool:
            return await ping(self.db)

        return {"broker": broker, "database": database}


def topology_of(settings: Settings) -> Topology:
    return Topology(
        partitions=settings.router_partitions,
        delivery_limit=settings.delivery_limit,
        retry_delays_ms=tuple(settings.retry_delays_ms),
    )


@asynccontextmanager
async def open_service(name: str, settings: Settings, metrics: Metrics) -> AsyncIterator[ServiceContext]:
    mongo, db = open_database(settings.mongodb_url)
    instance = new_id()
    broker = Broker(
        settings.amqp_url,
        publish_timeout=settings.publish_timeout_seconds,
        topology=topology_of(settings),
        # Told apart in the management UI, which shows each partition's active consumer by connection.
        connection_name=f"{name} {instance}",
    )
    http = httpx.AsyncClient(timeout=settings.http_timeout_seconds, follow_redirects=False)
    try:
        await ensure_indexes(db)
        await broker.connect()
        yield ServiceContext(name, settings, metrics, broker, mongo, db, http, instance)
    finally:
        await http.aclose()
        await broker.close()
        await mongo.close()


@asynccontextmanager
async def running(consumers: Sequence[Consumer[Any]]) -> AsyncIterator[None]:
    """Start the consumers; on exit stop them, letting in-flight messages finish."""
    started: list[Consumer[Any]] = []
    try:
        for consumer in consumers:
            await consumer.start()
            started.append(consumer)
        yield
    finally:
        for consumer in reversed(started):
            await consumer.stop()


def hosted_app(
    name: str,
    settings: Settings,
    metrics: Metrics,
    start: Callable[[ServiceContext], AbstractAsyncContextManager[T]],
    routes: Sequence[BaseRoute] = (),
    service: Slot[T] | None = None,
) -> Starlette:
    """A service's app: its lifespan opens the long-lived clients (`open_service`) and runs `start` with them for as
    long as the app runs; what `start` yields is kept in `service` (also `app.state.service`) for the routes, empty
    (503) before start and after stop. `/healthz`, `/readyz` (broker and database reachable) and `/metrics` come
    before `routes`."""
    held: Slot[T] = service if service is not None else Slot()
    context: Slot[ServiceContext] = Slot()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_service(name, settings, metrics) as ctx:
            context.set(ctx)
            try:
                async with start(ctx) as value:
                    held.set(value)
                    yield
            finally:
                held.set(None)
                context.set(None)

    def checks() -> dict[str, ReadyCheck]:
        current = context.peek()
        return current.ready_checks() if current else {}

    app = service_app([*health_routes(checks, metrics), *routes], lifespan)
    app.state.service = held
    return app


def main(create_app: Callable[[Settings], object], name: str) -> None:
    """The `python -m omni_<service>` entry point: settings from the environment, then serve."""
    settings = Settings()
    serve(create_app(settings), name, settings)


def serve(app: object, name: str, settings: Settings) -> None:
    """Run one service in this process until SIGINT or SIGTERM; uvicorn drains and runs the lifespan's exit."""
    configure_logging(name, settings.log_level)
    log.info("starting", extra={"port": settings.port_of(name)})
    config = server_config(
        app,
        settings.http_host,
        settings.port_of(name),
        header_timeout=settings.request_header_timeout_seconds,
        body_timeout=settings.request_body_timeout_seconds,
        access_log=settings.access_log,
        timeout_graceful_shutdown=15,
    )
    server = Server(config)
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the lifespan failed to start
