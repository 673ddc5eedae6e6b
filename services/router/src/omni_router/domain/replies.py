"""Operators' replies: what a reply is, and when two requests under one Idempotency-Key are the same request."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from omni_contracts import Attachment, Template
from omni_router.domain.errors import Unprocessable
from omni_router.domain.model import Chat, Contact, FileRef, Message
from omni_router.domain.views import iso

# How long an operator's Idempotency-Key stands for its first reply.
KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class ReplyWindow:
    """Whether the messenger's customer-service window lets a reply go now (`omni_providers.window`): `verdict`
    `allowed`, `allowed_with_tag`, `template_required`, `window_closed` or `templates_unsupported`; `window_ends_at`
    when free text stops (stopped) being allowed; `reason` a sentence for the refusal."""

    verdict: str
    window_ends_at: datetime | None = None
    reason: str | None = None


# A refused reply's API error, by the window's verdict.
REFUSALS = {
    "template_required": "template_required",
    "window_closed": "reply_window_closed",
    "templates_unsupported": "templates_unsupported",
}


def refusal(window: ReplyWindow) -> Unprocessable | None:
    """The 422 a reply the window refuses answers (with `window_ends_at`), or None when it may go."""
    code = REFUSALS.get(window.verdict)
    if code is None:
        return None
    ends = window.window_ends_at
    fields = {"window_ends_at": iso(ends)} if code != "templates_unsupported" else {}
    return Unprocessable(code, window.reason or f"the reply is refused: {window.verdict}", fields)


def given_files(files: Sequence[Attachment]) -> list[FileRef]:
    """Files a reply names by a messenger's URL or file id (ours come by `file_id`, described by the uploads)."""
    return [
        FileRef(
            url=a.url,
            provider_file_id=a.provider_file_id,
            content_type=a.content_type,
            file_name=a.file_name,
            size=a.size,
            status="stored",
        )
        for a in files
    ]


def reply(
    message_id: str,
    chat: Chat,
    contact: Contact,
    operator_id: str,
    text: str | None,
    files: Sequence[FileRef],
    *,
    at: datetime,
    now: float,
    template: Template | None = None,
) -> Message:
    """An operator's reply as stored before it is published: `queued`, with `publish_due` for the reply outbox."""
    return Message(
        id=message_id,
        chat_id=chat.id,
        channel_id=chat.channel_id,
        direction="outgoing",
        type="template" if template is not None else "file" if files and not text else "text",
        text=text,
        operator_id=operator_id,
        recipient=contact.external_id_on(chat.channel_id),
        attachments=tuple(files),
        template=template.model_dump(mode="json") if template is not None else None,
        status="queued",
        published=False,
        # Until published: when the reply outbox's sweep publishes it if the broker could not confirm at once.
        publish_due=now,
        created_at=at,
    )


def outgoing_files(message: Message) -> tuple[Attachment, ...]:
    """A reply's files as the dispatcher gets them: ours by `file_id` (it reads the rest from GridFS)."""
    return tuple(
        Attachment(
            file_id=f.file_id,
            url=f.url,
            provider_file_id=f.provider_file_id,
            content_type=f.content_type,
            file_name=f.file_name,
            size=f.size,
        )
        for f in message.attachments
    )


def outgoing_template(message: Message) -> Template | None:
    return Template.model_validate(message.template) if message.template is not None else None


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
