"""Handling `attachment.requested`: fetch the file into GridFS once and tell the router how it went.

Transient trouble raises RetryLater and the consumer retries through its wait queues; a final
refusal, or giving up after the last attempt, is reported as a `failed` attachment with its reason.
"""

import logging

import httpx

from omni_attachments.fetch import FetchPolicy, open_download
from omni_attachments.files import AttachmentFiles, FileKey
from omni_attachments.sources import locate
from omni_contracts import AttachmentRequested, AttachmentStored
from omni_providers import ProviderRegistry
from omni_runtime.broker import Broker
from omni_runtime.database import Database
from omni_runtime.errors import PermanentError
from omni_runtime.files import StoredFile

log = logging.getLogger(__name__)

GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream")


async def store_attachment(
    event: AttachmentRequested,
    files: AttachmentFiles,
    broker: Broker,
    db: Database,
    registry: ProviderRegistry,
    http: httpx.AsyncClient,
    policy: FetchPolicy,
) -> None:
    """Safe to repeat: a file already stored for (message, index) is reported again, not fetched again."""
    key = FileKey(event.message_id, event.index)
    stored = await files.find(key)
    if stored is None:
        try:
            stored = await _download(event, key, files, db, registry, http, policy)
        except PermanentError as exc:
            log.warning("attachment refused", extra={"message_id": event.message_id, "cause": str(exc)})
            await broker.publish_event(_failed(event, str(exc)))
            return
    await broker.publish_event(_stored(event, stored))


async def give_up(event: AttachmentRequested | None, cause: str, files: AttachmentFiles, broker: Broker) -> None:
    """Called before a request is parked: the attachment is `failed` with the cause, unless its file made it."""
    if event is None:
        return
    stored = await files.find(FileKey(event.message_id, event.index))
    await broker.publish_event(_stored(event, stored) if stored else _failed(event, cause))


async def _download(
    event: AttachmentRequested,
    key: FileKey,
    files: AttachmentFiles,
    db: Database,
    registry: ProviderRegistry,
    http: httpx.AsyncClient,
    policy: FetchPolicy,
) -> StoredFile:
    attachment = event.attachment
    if attachment.size is not None and attachment.size > policy.max_bytes:
        raise PermanentError(f"attachment is {attachment.size} bytes, above the limit of {policy.max_bytes} bytes")
    location = await locate(attachment, event.provider, event.channel_id, registry, db, http)
    async with open_download(http, location, policy) as download:
        content_type = choose_content_type(download.content_type, attachment.content_type)
        file_name = attachment.file_name or f"attachment-{event.index}"
        return await files.save(key, event.chat_id, file_name, content_type, download.copy_to)


def choose_content_type(served: str | None, declared: str | None) -> str | None:
    """The server's type, unless it is missing or generic (storage services say octet-stream for everything)."""
    if served and served.split(";")[0].strip().lower() not in GENERIC_TYPES:
        return served
    return declared or served


def _stored(event: AttachmentRequested, stored: StoredFile) -> AttachmentStored:
    return AttachmentStored(
        message_id=event.message_id,
        chat_id=event.chat_id,
        index=event.index,
        status="stored",
        file_id=stored.file_id,
        size=stored.size,
        content_type=stored.content_type,
    )


def _failed(event: AttachmentRequested, reason: str) -> AttachmentStored:
    return AttachmentStored(
        message_id=event.message_id,
        chat_id=event.chat_id,
        index=event.index,
        status="failed",
        failure_reason=reason,
    )
