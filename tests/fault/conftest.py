"""Fault tests run the services as real processes, on a MongoDB stand-in of the test's own, and print their logs
when they fail."""

from collections.abc import AsyncIterator, Generator
from uuid import uuid4

import pytest

from omni_runtime.settings import Settings
from tests.support.processes import MongoServer, Processes

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    return any(report.failed for report in request.node.stash.get(REPORTS, {}).values())


@pytest.fixture
async def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MongoServer]:
    server = MongoServer(tmp_path_factory.mktemp("nx"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(settings: Settings, mongo_server: MongoServer) -> Settings:
    """The tests' settings, on the database server of this test."""
    return settings.model_copy(update={"mongodb_url": mongo_server.url(f"t{uuid4().hex[:16]}")})


@pytest.fixture
async def processes(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Processes]:
    running = Processes(settings, tmp_path_factory.mktemp("logs"))
    yield running
    await running.close()
    if failed(request):
        print(running.logs())
