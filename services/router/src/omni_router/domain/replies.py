"""Operators' replies: what a reply is, and when two requests under one Idempotency-Key are the same request."""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from omni_contracts import Attachment
from omni_router.domain.model import Chat, Contact, FileRef, Message

# How long an operator's Idempotency-Key stands for its first reply.
KEY_LIFETIME = timedelta(hours=24)


def reply(
    message_id: str,
    chat: Chat,
    contact: Contact,
    operator_id: str,
    text: str | None,
    files: list[Attachment],
    *,
    at: datetime,
    now: float,
) -> Message:
    """An operator's reply as stored before it is published: `queued`, with `publish_due` for the reply outbox."""
    return Message(
        id=message_id,
        chat_id=chat.id,
        channel_id=chat.channel_id,
        direction="outgoing",
        type="file" if files and not text else "text",
        text=text,
        operator_id=operator_id,
        recipient=contact.external_id,
        attachments=tuple(
            FileRef(
                url=a.url,
                provider_file_id=a.provider_file_id,
                content_type=a.content_type,
                file_name=a.file_name,
                size=a.size,
                status="stored",
            )
            for a in files
        ),
        status="queued",
        published=False,
        # Until published: when the reply outbox's sweep publishes it if the broker could not confirm at once.
        publish_due=now,
        created_at=at,
    )


def outgoing_files(message: Message) -> tuple[Attachment, ...]:
    """A reply's files as the dispatcher gets them."""
    return tuple(
        Attachment(
            url=f.url,
            provider_file_id=f.provider_file_id,
            content_type=f.content_type,
            file_name=f.file_name,
            size=f.size,
        )
        for f in message.attachments
    )


def fingerprint(chat_id: str, body: Any) -> str:
    """What makes two requests the same request: the chat and the parsed body (not its spacing or key order)."""
    canonical = json.dumps({"chat_id": chat_id, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class KeyClaim:
    """An operator's Idempotency-Key as first used: the request it came with and the reply id it stands for."""

    id: str  # "<operator id>:<key>"
    operator_id: str
    fingerprint: str
    message_id: str
    created_at: datetime

    def expired(self, now: datetime) -> bool:
        return self.created_at <= now - KEY_LIFETIME
