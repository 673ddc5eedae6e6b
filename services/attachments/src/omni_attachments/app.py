"""Composition root of the attachments service: the attachment-request consumer and its health endpoints."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette

from omni_attachments.downloads import give_up, store_attachment
from omni_attachments.fetch import FetchPolicy
from omni_attachments.files import AttachmentFiles
from omni_contracts import AttachmentRequested
from omni_providers import ProviderRegistry
from omni_runtime.metrics import Metrics
from omni_runtime.service import ServiceContext, hosted_app, running
from omni_runtime.settings import Settings
from omni_runtime.topology import ATTACHMENTS_REQUESTED

SERVICE = "attachments"


def create_app(settings: Settings | None = None, registry: ProviderRegistry | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics(SERVICE)
    registry = registry or ProviderRegistry.from_entry_points(settings)
    policy = FetchPolicy(max_bytes=settings.attachment_max_bytes, allow_private=settings.allow_private_fetch)

    @asynccontextmanager
    async def start(ctx: ServiceContext) -> AsyncIterator[None]:
        files = AttachmentFiles(ctx.db)
        await files.ensure_index()
        consumer = ctx.consumer(
            ATTACHMENTS_REQUESTED,
            AttachmentRequested.model_validate_json,
            partial(
                store_attachment,
                files=files,
                broker=ctx.broker,
                db=ctx.db,
                registry=registry,
                http=ctx.http,
                policy=policy,
            ),
            on_park=partial(give_up, files=files, broker=ctx.broker),
        )
        async with running([consumer]):
            yield

    return hosted_app(SERVICE, settings, metrics, start)
