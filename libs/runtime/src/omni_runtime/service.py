"""The long-lived clients a service holds, opened and closed together, and the process entry point."""

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
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
from omni_runtime.database import CommandCounter, Database, Document, ensure_indexes, open_database, ping
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
    mongo, db = open_database(settings.mongodb_url, [CommandCounter(metrics.database_commands)])
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
    metrics.worker.labels(str(worker_index()), str(os.getpid())).set(1)
    return app


_worker_index = 0
PR_SET_PDEATHSIG = 1


def worker_index() -> int:
    """Which of a service's worker processes this is (0 in the first, and where a service runs as one process):
    what must run once per service (Telegram's pollers) runs in worker 0."""
    return _worker_index


def main(
    create_app: Callable[[Settings], object], name: str, *, workers: Callable[[Settings], int] | None = None
) -> None:
    """The `python -m omni_<service>` entry point: settings from the environment, then serve; `workers`: how many
    processes serve the service's port (the settings say), each its own app (see `serve_workers`)."""
    settings = Settings()
    count = workers(settings) if workers is not None else 1
    if count > 1:
        serve_workers(create_app, name, settings, count)
    else:
        serve(create_app(settings), name, settings)


def serve_workers(create_app: Callable[[Settings], object], name: str, settings: Settings, count: int) -> None:
    """Run `count` worker processes of one service on its port, until SIGINT or SIGTERM (passed on to each; they
    drain as one process does). Each worker binds the port itself with SO_REUSEPORT, so the kernel spreads new
    connections over them, and opens its own broker and database connections in its lifespan. When a worker stops
    by itself (a crash, a failed start), the others are stopped too and this process exits with its code: the
    supervisor (compose, systemd, Kubernetes) restarts the service whole."""
    configure_logging(name, settings.log_level)
    log.info("starting workers", extra={"port": settings.port_of(name), "workers": count})
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=_run_worker, args=(create_app, name, index), name=f"{name}-{index}", daemon=False)
        for index in range(count)
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    ended = multiprocessing.connection.wait([process.sentinel for process in processes])
    if not stopping:
        first = next(process for process in processes if process.sentinel in ended)
        log.error("a worker stopped; stopping the others", extra={"worker": first.name, "code": first.exitcode})
        stop(signal.SIGTERM, None)
    for process in processes:
        process.join()
    codes = [process.exitcode for process in processes]
    failed = [code for code in codes if code not in (0, -signal.SIGTERM, -signal.SIGINT)]
    if failed:
        sys.exit(failed[0] if failed[0] and failed[0] > 0 else 1)


def _run_worker(create_app: Callable[[Settings], object], name: str, index: int) -> None:
    global _worker_index
    _worker_index = index
    if sys.platform == "linux":  # stopped by the kernel if the supervising process dies without stopping it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    settings = Settings()
    serve(create_app(settings), name, settings, reuse_port=True)


def _reusable_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that other processes of the same user may bind too (SO_REUSEPORT)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(app: object, name: str, settings: Settings, *, reuse_port: bool = False) -> None:
    """Run one service in this process until SIGINT or SIGTERM; uvicorn drains and runs the lifespan's exit.
    `reuse_port`: bind the port shared with the service's other workers (SO_REUSEPORT)."""
    configure_logging(name, settings.log_level)
    log.info("starting", extra={"port": settings.port_of(name), "worker": _worker_index})
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
    sockets = [_reusable_socket(settings.http_host, settings.port_of(name))] if reuse_port else None
    with suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the lifespan failed to start
