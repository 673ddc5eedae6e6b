"""Composition root of the profiles service: the profile-request consumer and its health endpoints."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette

from omni_contracts import ProfileRequested
from omni_profiles.profiles import KeptChannels, give_up, resolve_profile
from omni_providers import ProviderRegistry
from omni_runtime.metrics import Metrics
from omni_runtime.service import ServiceContext, hosted_app, running
from omni_runtime.settings import Settings
from omni_runtime.topology import PROFILES_REQUESTED

SERVICE = "profiles"


def create_app(settings: Settings | None = None, registry: ProviderRegistry | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics(SERVICE)
    registry = registry or ProviderRegistry.from_entry_points(settings)

    @asynccontextmanager
    async def start(ctx: ServiceContext) -> AsyncIterator[None]:
        channels = KeptChannels.of(ctx.db)
        consumer = ctx.consumer(
            PROFILES_REQUESTED,
            ProfileRequested.model_validate_json,
            partial(resolve_profile, channels=channels, broker=ctx.broker, registry=registry, http=ctx.http),
            on_park=partial(give_up, channels=channels, broker=ctx.broker),
        )
        async with running([consumer]):
            yield

    return hosted_app(SERVICE, settings, metrics, start)
