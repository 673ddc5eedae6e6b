"""Composition root of the dispatcher: the consumers of replies and of outbound webhooks, and health endpoints."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette

from omni_contracts import MessageOutgoing, WebhookDelivery
from omni_dispatcher import webhooks
from omni_dispatcher.delivery import OutgoingFiles, deliver, give_up, record_outcome
from omni_dispatcher.pacing import Pacer
from omni_dispatcher.sequencing import Sequencer, retry_schedule_seconds
from omni_providers import ProviderRegistry
from omni_providers.media import media_links
from omni_runtime.files import FileStore
from omni_runtime.metrics import Metrics
from omni_runtime.service import ServiceContext, hosted_app, running
from omni_runtime.settings import Settings
from omni_runtime.topology import DISPATCHER_OUTGOING, DISPATCHER_WEBHOOKS

SERVICE = "dispatcher"
STALE_MARGIN_SECONDS = 300.0


def create_app(settings: Settings | None = None, registry: ProviderRegistry | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics(SERVICE)
    registry = registry or ProviderRegistry.from_entry_points(settings)

    @asynccontextmanager
    async def start(ctx: ServiceContext) -> AsyncIterator[None]:
        consumer = ctx.consumer(
            DISPATCHER_OUTGOING,
            MessageOutgoing.model_validate_json,
            partial(
                deliver,
                db=ctx.db,
                broker=ctx.broker,
                registry=registry,
                http=ctx.http,
                metrics=metrics,
                pacer=Pacer(),
                sequencer=Sequencer(ctx.db, stale_after=_stale_after(settings)),
                files=OutgoingFiles(FileStore(ctx.db), media_links(settings)),
            ),
            on_park=partial(give_up, db=ctx.db, broker=ctx.broker, metrics=metrics),
            record=partial(record_outcome, db=ctx.db, broker=ctx.broker),
        )
        hooks = ctx.consumer(
            DISPATCHER_WEBHOOKS,
            WebhookDelivery.model_validate_json,
            partial(webhooks.deliver_webhook, db=ctx.db, http=ctx.http, allow_private=settings.allow_private_fetch),
            on_park=partial(webhooks.give_up, db=ctx.db),
            record=partial(webhooks.record_answered, db=ctx.db),
        )
        async with running([consumer, hooks]):
            yield

    return hosted_app(SERVICE, settings, metrics, start)


def _stale_after(settings: Settings) -> float:
    """A reply unsettled for longer than its whole retry schedule (and a margin) no longer holds its chat."""
    schedule = retry_schedule_seconds(settings.retry_delays_ms, settings.max_attempts, settings.http_timeout_seconds)
    return schedule + STALE_MARGIN_SECONDS
