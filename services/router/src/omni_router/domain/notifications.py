"""Operator notifications: what each operator is told about a chat, who hears of it, and a chat's outbox.

A change of a chat queues the notifications it causes (and the webhooks' events) in the chat's outbox in the
same write; they are published from there (see service_layer/notices.py). Event ids are what consumers dedupe
on: a repeat of the same cause (a redelivered receipt) carries the same ids when the notification is keyed by
its cause.
"""

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omni_contracts import ChatNotification
from omni_contracts.events import NotificationKind
from omni_router.domain.integration import IntegrationEvent
from omni_router.domain.model import Chat


@dataclass(frozen=True, slots=True)
class Notification:
    """One event for one operator, as a chat's outbox holds it until it is published."""

    event_id: str
    event: NotificationKind
    operator_id: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_contract(self, chat_id: str) -> ChatNotification:
        return ChatNotification(
            event_id=self.event_id,
            event=self.event,
            chat_id=chat_id,
            operator_id=self.operator_id,
            data=dict(self.data),
        )


def notifications(
    kind: NotificationKind,
    operator_ids: Iterable[str],
    data: Mapping[str, Any] | None = None,
    *,
    new_id: Callable[[], str],
    key: str | None = None,
) -> list[Notification]:
    """One event to each of `operator_ids` (each once); with `key` (what the event is about, e.g. a message and its
    status) their event ids are derived from it, so handling the same cause again repeats the same ids."""
    return [
        Notification(derived_id(key, kind, op) if key else new_id(), kind, op, dict(data or {}))
        for op in dict.fromkeys(operator_ids)
    ]


def derived_id(key: str, kind: str, operator_id: str) -> str:
    """24 hex characters, like every other id, the same for the same key, event and operator."""
    return hashlib.blake2b(f"{key}|{kind}|{operator_id}".encode(), digest_size=12).hexdigest()


# What a chat's outbox holds: notifications for operators, and events for the webhooks' subscribers.
Queued = Notification | IntegrationEvent


@dataclass(frozen=True, slots=True)
class Outbox:
    """Notifications to publish for one chat, in the order they were queued.

    `queued` maps each note's creation-ordered key to it; `legacy` is an outbox 0.1 wrote as a list. `version` is
    the chat's `offer_version` when read (None: it had none). `shared`: the chat's outbox held notes of other
    changes too at that version (theirs to publish), so publishing these does not empty it.
    """

    chat_id: str
    queued: tuple[tuple[str, Queued], ...] = ()
    legacy: tuple[Notification, ...] = ()
    version: int | None = 0
    shared: bool = False

    @property
    def all(self) -> list[Queued]:
        return [*self.legacy, *(note for _, note in self.queued)]


def audience(chat: Chat) -> list[str]:
    """Who hears about a chat now: its holder, or everyone it is offered to while nobody holds it."""
    if chat.operator_id:
        return [chat.operator_id]
    if chat.is_open:
        return list(chat.offered_to)
    return []


def involved(chat: Chat) -> list[str]:
    """Everyone a change of the chat concerns: its holder and whoever it is offered to."""
    return list(dict.fromkeys(op for op in [chat.operator_id, *chat.offered_to] if op))
