"""Publishing operator notifications: each is recorded in the notification log (what the live streams show),
then published to the operator's queue. A chat's outbox also carries the webhooks' events its changes cause,
published to their subscribers (integration_events.py) in the same order.

A notification that follows a chat's change sits in the chat's outbox, written by the same atomic update as the
change, until it is published; what a crash or a broker outage leaves there is published by the routing sweep,
with its original event id (consumers dedupe on it).
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omni_contracts import ChatNotification
from omni_contracts.events import NotificationKind
from omni_router.domain.integration import IntegrationEvent
from omni_router.domain.notifications import Notification, Outbox, notifications
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.ports import (
    BrokerUnavailable,
    Chats,
    Clock,
    NotificationLog,
    OperatorQueues,
    Operators,
    Removal,
)

log = logging.getLogger(__name__)

STALE_BATCH = 500


@dataclass(frozen=True)
class Telling:
    """What `Notices.tell` takes, for `tell_many`."""

    kind: NotificationKind
    chat_id: str
    operator_ids: Iterable[str]
    data: Mapping[str, Any]
    key: str


class Notices:
    def __init__(
        self,
        queues: OperatorQueues,
        notification_log: NotificationLog,
        chats: Chats,
        operators: Operators,
        clock: Clock,
        integration: IntegrationEvents,
    ) -> None:
        self._integration = integration
        self._queues = queues
        self._log = notification_log
        self._chats = chats
        self._operators = operators
        self._clock = clock

    async def tell(
        self,
        kind: NotificationKind,
        chat_id: str,
        operator_ids: Iterable[str],
        data: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> None:
        """Publish at once (for events whose cause is redelivered until this succeeds). With `key`, a repeat (the
        cause redelivered after a crash between its write and this) carries the same event ids."""
        notes = notifications(kind, operator_ids, data, key=key, new_id=self._clock.new_id)
        messages = [note.to_contract(chat_id) for note in notes]
        await self._log.record(messages)  # stored first: a stored notification is what the live stream shows
        for message in messages:
            await self._queues.publish(message)

    async def tell_many(self, tellings: Sequence[Telling]) -> set[int]:
        """`tell` for each: recorded in one write, then published, each chat's in order and the chats side by side
        (every publish waits for its confirm). Answers the positions of those not wholly published: after a refusal
        the rest of that chat's are not tried, for their cause to be handled again (a repeat has the same ids)."""
        by_chat: dict[str, list[tuple[int, list[ChatNotification]]]] = {}
        for position, t in enumerate(tellings):
            notes = notifications(t.kind, t.operator_ids, t.data, key=t.key, new_id=self._clock.new_id)
            by_chat.setdefault(t.chat_id, []).append((position, [note.to_contract(t.chat_id) for note in notes]))
        await self._log.record([m for line in by_chat.values() for _, messages in line for m in messages])
        refused: set[int] = set()

        async def in_order(line: list[tuple[int, list[ChatNotification]]]) -> None:
            for number, (_, messages) in enumerate(line):
                try:
                    for message in messages:
                        await self._queues.publish(message)
                except BrokerUnavailable:
                    refused.update(position for position, _ in line[number:])
                    return

        await asyncio.gather(*(in_order(line) for line in by_chat.values()))
        return refused

    async def publish(self, outbox: Outbox) -> bool:
        """Publish the outbox in the order it was queued and remove what was published; False if the broker refused
        (the rest stays for the sweep)."""
        # Each notification as one contract: the log and the operator's queue carry the very same JSON.
        notes = [note.to_contract(outbox.chat_id) if isinstance(note, Notification) else note for note in outbox.all]
        await self._log.record([note for note in notes if isinstance(note, ChatNotification)])
        published = await self._publish_in_order(notes)
        if published < len(notes):
            log.warning("notification left in the chat outbox for the sweep", extra={"chat_id": outbox.chat_id})
        return await self._remove_published(outbox, published)

    async def publish_many(self, outboxes: Sequence[Outbox]) -> None:
        """`publish` for each (each of its own chat): recorded in one write, published side by side (each in its
        order), what was published removed in one write."""
        if not outboxes:
            return
        notes = [
            [note.to_contract(o.chat_id) if isinstance(note, Notification) else note for note in o.all]
            for o in outboxes
        ]
        await self._log.record([n for line in notes for n in line if isinstance(n, ChatNotification)])
        published = await asyncio.gather(*(self._publish_in_order(line) for line in notes))
        removals = []
        for outbox, line, count in zip(outboxes, notes, published, strict=True):
            if count < len(line):
                log.warning("notification left in the chat outbox for the sweep", extra={"chat_id": outbox.chat_id})
            removal = _removal(outbox, count)
            if removal is not None:
                removals.append(removal)
        await self._chats.remove_published_many(removals)

    async def _remove_published(self, outbox: Outbox, published: int) -> bool:
        """Remove the first `published` notes (the 0.1 list first) from the chat's outbox; whether that was all."""
        removal = _removal(outbox, published)
        if removal is not None:
            await self._chats.remove_published(outbox, removal.keys, legacy=removal.legacy, whole=removal.whole)
        return published == len(outbox.legacy) + len(outbox.queued)

    async def _publish_in_order(self, notes: list[ChatNotification | IntegrationEvent]) -> int:
        """How many of `notes` went out, in order, until the broker refused one."""
        for count, note in enumerate(notes):
            if not await self._published(note):
                return count
        return len(notes)

    async def _published(self, note: ChatNotification | IntegrationEvent) -> bool:
        """Publish one of the outbox's notes: to its operator, or to the webhooks' subscribers. False if the broker
        did not take it (it stays for the sweep)."""
        try:
            if isinstance(note, ChatNotification):
                await self._queues.publish(note)
            else:
                await self._integration.publish(note)
        except BrokerUnavailable:
            # An operator deleted meanwhile has no queue left: their note can never be routed.
            return isinstance(note, ChatNotification) and not await self._operators.exists(note.operator_id)
        return True

    async def publish_stale(self, older_than_seconds: float) -> int:
        """Publish outboxes left behind for longer than `older_than_seconds`."""
        delivered = 0
        for outbox in await self._chats.stale_outboxes(self._clock.time() - older_than_seconds, STALE_BATCH):
            if await self.publish(outbox):
                delivered += 1
        return delivered


def _removal(outbox: Outbox, published: int) -> Removal | None:
    """What removing the first `published` notes (the 0.1 list first) from the chat's outbox writes; None: nothing."""
    legacy = len(outbox.legacy)
    if published < legacy:
        return None
    keys = [key for key, _ in outbox.queued][: published - legacy]
    everything = published == legacy + len(outbox.queued)
    if not (keys or legacy):
        return None
    return Removal(outbox, keys, bool(legacy), everything and not outbox.shared)
