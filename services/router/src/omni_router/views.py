"""The JSON shapes API.md fixes, built from stored documents. Secrets never reach these."""

from datetime import UTC, datetime
from typing import Any

from omni_runtime.database import Document

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


def _time(value: Any) -> str | None:
    """ISO 8601 in UTC. The nx-27017 stand-in keeps a datetime written by `$set` as text
    (`2026-11-26 22:51:21.777000`, UTC); MongoDB keeps a date. Both read the same here."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def chat_view(chat: Document, contact_name: str | None = None, unread_count: int = 0) -> dict[str, Any]:
    return {
        "id": chat["_id"],
        "channel_id": chat["channel_id"],
        "queue_id": chat.get("queue_id"),
        "contact": {"id": chat["contact_id"], "name": contact_name or chat.get("contact_name")},
        "status": chat["status"],
        "operator_id": chat.get("operator_id"),
        "unread_count": unread_count,
        "created_at": _time(chat.get("created_at")),
        "last_message_at": _time(chat.get("last_message_at")),
        "closed_at": _time(chat.get("closed_at")),
    }


def message_view(message: Document) -> dict[str, Any]:
    return {
        "id": message["_id"],
        "chat_id": message["chat_id"],
        "direction": message["direction"],
        "type": message.get("type", "text"),
        "text": message.get("text"),
        "attachments": [attachment_view(a) for a in message.get("attachments", [])],
        "status": message["status"],
        "failure_reason": message.get("failure_reason"),
        "created_at": _time(message.get("created_at")),
        "sent_at": _time(message.get("sent_at")),
    }


def attachment_view(attachment: Document) -> dict[str, Any]:
    return {
        "file_id": attachment.get("file_id"),
        "file_name": attachment.get("file_name"),
        "content_type": attachment.get("content_type"),
        "size": attachment.get("size"),
        "status": attachment.get("status", "pending"),
        "failure_reason": attachment.get("failure_reason"),
    }


def queue_view(queue: Document) -> dict[str, Any]:
    return {
        "id": queue["_id"],
        "name": queue["name"],
        "routing_rule": queue["routing_rule"],
        "completion_timeout_minutes": queue.get("completion_timeout_minutes"),
        "operator_ids": list(queue.get("operator_ids", [])),
        "on_operator_offline": queue.get("on_operator_offline", "keep"),
        "offer_timeout_seconds": queue.get("offer_timeout_seconds"),
        "created_at": _time(queue.get("created_at")),
    }


def operator_view(operator: Document) -> dict[str, Any]:
    return {
        "id": operator["_id"],
        "name": operator["name"],
        "role": operator.get("role", "operator"),
        "max_chats": operator.get("max_chats"),
        "active_chats": operator.get("load", 0),
        "status": operator.get("status", "offline"),
        "created_at": _time(operator.get("created_at")),
    }


def channel_view(channel: Document) -> dict[str, Any]:
    settings = channel.get("settings") or {}
    return {
        "id": channel["_id"],
        "name": channel["name"],
        "provider": channel["provider"],
        "source": channel["source"],
        "queue_id": channel.get("queue_id"),
        "is_active": channel.get("is_active", True),
        "settings": {k: v for k, v in settings.items() if k not in SECRET_SETTINGS},
        "secrets_set": sorted(k for k in settings if k in SECRET_SETTINGS and settings[k]),
        "registration": channel.get("registration"),
        "created_at": _time(channel.get("created_at")),
    }
