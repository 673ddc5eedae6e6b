"""Composition root of the profiles service: the profile-request consumer and its health endpoints."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette

from omni_contracts import ProfileRequested
from omni_profiles.profiles import give_up, resolve_profile
from omni_providers import ProviderRegistry
from omni_runtime.metrics import Metrics
from omni_runtime.service import ServiceContext, Slot, open_service, running
from omni_runtime.settings import Settings
from omni_runtime.topology import PROFILES_REQUESTED
from omni_runtime.web import ReadyCheck, health_routes, service_app

SERVICE = "profiles"


def create_app(settings: Settings | None = None, registry: ProviderRegistry | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics(SERVICE)
    registry = registry or ProviderRegistry.from_entry_points(settings)
    slot: Slot[ServiceContext] = Slot()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_service(SERVICE, settings, metrics) as ctx:
            consumer = ctx.consumer(
                PROFILES_REQUESTED,
                ProfileRequested.model_validate_json,
                partial(resolve_profile, db=ctx.db, broker=ctx.broker, registry=registry, http=ctx.http),
                on_park=partial(give_up, db=ctx.db, broker=ctx.broker),
            )
            slot.set(ctx)
            try:
                async with running([consumer]):
                    yield
            finally:
                slot.set(None)

    def checks() -> dict[str, ReadyCheck]:
        current = slot.peek()
        return current.ready_checks() if current else {}

    return service_app(health_routes(checks, metrics), lifespan)
