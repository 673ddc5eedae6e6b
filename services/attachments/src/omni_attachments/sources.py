"""Where an attachment's bytes are fetched from: its URL, or what the provider adapter's hook says.

Messengers that hand out file ids (Telegram) or protect their media URLs (Meta, Twilio) add a
`locate_attachment` method to their adapter (the AttachmentSource hook); third-party providers post
a plain URL and need none.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from omni_contracts import Attachment
from omni_providers import AttachmentSource, Channel, FileLocation, ProviderRegistry, UnknownProvider
from omni_runtime.database import Database
from omni_runtime.errors import PermanentError


@dataclass(frozen=True)
class PlainUrl:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


async def locate(
    attachment: Attachment,
    provider: str,
    channel_id: str,
    registry: ProviderRegistry,
    db: Database,
    http: httpx.AsyncClient,
) -> FileLocation:
    source = _source(registry, provider)
    if source is None:
        if not attachment.url:
            raise PermanentError(f"the attachment has no URL and provider {provider} cannot resolve file ids")
        return PlainUrl(attachment.url)
    doc = await db.channels.find_one({"_id": channel_id})
    if doc is None:
        raise PermanentError(f"channel {channel_id} no longer exists")
    return await source.locate_attachment(http, Channel.from_document(doc), attachment)


def _source(registry: ProviderRegistry, provider: str) -> AttachmentSource | None:
    try:
        adapter = registry.get(provider)
    except UnknownProvider:
        return None  # a built-in messenger whose adapter is not in this build: only a plain URL can work
    return adapter if isinstance(adapter, AttachmentSource) else None
