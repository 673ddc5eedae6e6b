"""The JSON shapes the public API fixes, for answers and notifications alike. Secrets never reach these."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from omni_router.domain.access import QUEUE_ACTIONS
from omni_router.domain.canned import CannedResponse
from omni_router.domain.labels import Label
from omni_router.domain.model import Channel, Chat, FileRef, Message, Operator, Queue
from omni_router.domain.search import SearchEntry

SECRET_SETTINGS = frozenset(
    {
        "secret",
        "bot_token",
        "secret_token",
        "page_access_token",
        "app_secret",
        "verify_token",
        "access_token",
        "auth_token",
    }
)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601, in UTC when the time carries no zone."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def chat_view(chat: Chat, contact_name: str | None = None, unread_count: int = 0) -> dict[str, Any]:
    return {
        "id": chat.id,
        "channel_id": chat.channel_id,
        "queue_id": chat.queue_id,
        "contact_id": chat.contact_id,
        "contact": {"id": chat.contact_id, "name": contact_name or chat.contact_name},
        "status": chat.status,
        "operator_id": chat.operator_id,
        "unread_count": unread_count,
        "created_at": iso(chat.created_at),
        "last_message_at": iso(chat.last_message_at),
        "closed_at": iso(chat.closed_at),
        "labels": list(chat.labels),
        "first_response_at": iso(chat.first_response_at),
        "not_before": iso(datetime.fromtimestamp(chat.not_before, UTC)) if chat.not_before else None,
        "rating": rating_view(chat.rating),
    }


def rating_view(rating: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if rating is None:
        return None
    return {"score": rating.get("score"), "comment": rating.get("comment"), "created_at": iso(rating.get("created_at"))}


def message_view(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "chat_id": message.chat_id,
        "direction": message.direction,
        "type": message.type,
        "text": message.text,
        "attachments": [attachment_view(a) for a in message.attachments],
        "template": dict(message.template) if message.template is not None else None,
        "status": message.status,
        "failure_reason": message.failure_reason,
        "created_at": iso(message.created_at),
        "sent_at": iso(message.sent_at),
        # Who wrote a reply or a note (None for a customer's message).
        "author_id": None if message.direction == "incoming" else message.operator_id,
    }


def note_view(note: Message) -> dict[str, Any]:
    return {
        "id": note.id,
        "chat_id": note.chat_id,
        "author_id": note.operator_id,
        "text": note.text,
        "created_at": iso(note.created_at),
    }


def label_view(label: Label) -> dict[str, Any]:
    return {"id": label.id, "name": label.name, "color": label.color, "created_at": iso(label.created_at)}


def canned_view(response: CannedResponse) -> dict[str, Any]:
    return {
        "id": response.id,
        "shortcut": response.shortcut,
        "text": response.text,
        "scope": response.scope,
        "queue_id": response.queue_id,
        "created_at": iso(response.created_at),
    }


def search_hit_view(entry: SearchEntry, chat_id: str | None) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "chat_id": chat_id,
        "contact_id": entry.contact_id,
        "message_id": entry.id if entry.kind == "message" else None,
        "text": entry.text,
        "created_at": iso(entry.created_at),
    }


def attachment_view(attachment: FileRef) -> dict[str, Any]:
    return {
        "file_id": attachment.file_id,
        "file_name": attachment.file_name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "status": attachment.status,
        "failure_reason": attachment.failure_reason,
    }


def queue_view(queue: Queue) -> dict[str, Any]:
    return {
        "id": queue.id,
        "name": queue.name,
        "routing_rule": queue.routing_rule,
        "completion_timeout_minutes": queue.completion_timeout_minutes,
        "operator_ids": list(queue.operator_ids),
        "on_operator_offline": queue.on_operator_offline,
        "offer_timeout_seconds": queue.offer_timeout_seconds,
        "business_hours": dict(queue.business_hours) if queue.business_hours is not None else None,
        "greeting_text": queue.greeting_text,
        "out_of_hours_text": queue.out_of_hours_text,
        "csat": dict(queue.csat) if queue.csat is not None else None,
        "created_at": iso(queue.created_at),
        "actions": list(QUEUE_ACTIONS if queue.actions is None else queue.actions),
    }


def operator_view(operator: Operator) -> dict[str, Any]:
    return {
        "id": operator.id,
        "name": operator.name,
        "role": operator.role,
        "max_chats": operator.max_chats,
        "active_chats": operator.load,
        "status": operator.status,
        "created_at": iso(operator.created_at),
    }


def channel_view(channel: Channel) -> dict[str, Any]:
    settings = channel.settings
    return {
        "id": channel.id,
        "name": channel.name,
        "provider": channel.provider,
        "source": channel.source,
        "queue_id": channel.queue_id,
        "is_active": channel.is_active,
        "settings": {k: v for k, v in settings.items() if k not in SECRET_SETTINGS},
        "secrets_set": sorted(k for k in settings if k in SECRET_SETTINGS and settings[k]),
        "registration": dict(channel.registration) if channel.registration is not None else None,
        "created_at": iso(channel.created_at),
    }
