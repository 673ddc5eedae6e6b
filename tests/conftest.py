"""Fixtures: the session's broker and database, and per test its own vhost, database, broker connection and services."""

from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
from pymongo import AsyncMongoClient

from omni_runtime.broker import Broker
from omni_runtime.database import Database, Document
from omni_runtime.service import topology_of
from omni_runtime.settings import Settings
from omni_runtime.web import HttpServer
from tests.support.infra import Infra, create_vhost, delete_vhost, free_port, start_infra
from tests.support.stack import ADMIN_TOKEN, MEDIA_SIGNING_KEY, Simulator, Stack


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with start_infra() as running:
        yield running


@pytest.fixture
def vhost(infra: Infra) -> Iterator[str]:
    name = f"test-{uuid4().hex[:12]}"
    create_vhost(infra, name)
    yield name
    delete_vhost(infra, name)


@pytest.fixture
def settings(infra: Infra, vhost: str, simulator: Simulator) -> Settings:
    """One test's settings: its own vhost and database, messenger APIs pointed at its simulator."""
    ingress_port = free_port()
    return Settings(
        amqp_url=infra.amqp_url(vhost),
        mongodb_url=f"{infra.mongo_base}/t{uuid4().hex[:16]}",
        admin_token=ADMIN_TOKEN,
        ingress_port=ingress_port,
        public_base_url=f"http://127.0.0.1:{ingress_port}",
        telegram_api_url=f"{simulator.url}/telegram",
        meta_graph_api_url=f"{simulator.url}/graph/v21.0",
        twilio_api_url=f"{simulator.url}/twilio",
        router_port=free_port(),
        dispatcher_port=free_port(),
        profiles_port=free_port(),
        attachments_port=free_port(),
        retry_delays_ms=[200, 400, 800],
        max_attempts=4,
        publish_timeout_seconds=2.0,
        http_timeout_seconds=2.0,
        outbox_sweep_seconds=1.0,
        allow_private_fetch=True,
        media_signing_key=MEDIA_SIGNING_KEY,
        # One ingress process (the default is one per CPU): tests read its /metrics, which answers per worker;
        # tests/e2e/test_ingress_workers.py runs two.
        ingress_workers=1,
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    database = client.get_default_database()
    yield database
    await client.drop_database(database.name)
    await client.close()


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    """A connected broker with the services' topology declared (a test may define its own in place of it)."""
    connected = Broker(settings.amqp_url, topology=topology_of(settings))
    await connected.connect()
    yield connected
    await connected.close()


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    running = Stack(settings)
    yield running
    await running.close()


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    from omni_simulator.app import create_app
    from omni_simulator.state import SimulatorState

    state = SimulatorState()
    server = HttpServer(create_app(state), "127.0.0.1", free_port())
    await server.start()
    yield Simulator(f"http://127.0.0.1:{server.port}", state)
    await server.stop()
