"""In-memory implementations of the router's ports (omni_router.service_layer.ports), for the unit tests.

They keep the semantics the use cases rely on: a chat change is a compare-and-set on its version (and its guard)
that adds its notes to the chat's outbox; a capacity unit is checked and taken in one step; an incoming message is
stored once per dedupe key, a reply once per id; a publisher can be made to refuse (the broker is down). Each
method runs without awaiting anything, so under asyncio it is atomic, as the database's single-document writes are.
tests/unit/test_engine.py runs the same behaviours against these and (tests/integration) against MongoDB.
"""

import itertools
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from omni_contracts import ChatNotification
from omni_contracts.events import Event
from omni_providers import Channel as ProviderChannel
from omni_providers import DeliveryPolicy, WindowTag
from omni_providers.window import ReplyKind, decide_reply
from omni_router.domain.access import Visibility
from omni_router.domain.canned import CannedResponse
from omni_router.domain.capacity import Holdings
from omni_router.domain.changes import ChatUpdate
from omni_router.domain.errors import Invalid, TooLarge
from omni_router.domain.integration import DeliveryAttempt, Subscription
from omni_router.domain.labels import Label
from omni_router.domain.model import OPEN_STATUSES, Channel, Chat, Contact, Message, Operator, Queue, Upload
from omni_router.domain.notifications import Notification, Outbox, Queued
from omni_router.domain.replies import KeyClaim, ReplyWindow
from omni_router.domain.reports import Percentiles, Period, ReportFilter, Summary, day_of, rank
from omni_router.domain.search import SearchEntry
from omni_router.domain.tokens import ApiToken, AuditEntry
from omni_router.service_layer.ports import (
    BrokerUnavailable,
    Naming,
    Postponement,
    Registration,
    Removal,
    Resolved,
    StoredNotification,
    Written,
)

START = 1_800_000_000.0

DAY = timedelta(hours=24)
# The providers' reply windows as they state them (omni_providers: whatsapp.py, twilio.py, meta/messenger.py).
WINDOW_POLICIES = {
    "whatsapp": DeliveryPolicy(reply_window=DAY, templates=True),
    "twilio": DeliveryPolicy(reply_window=DAY, templates=True),
    "messenger": DeliveryPolicy(
        reply_window=DAY, window_tag=WindowTag("HUMAN_AGENT", timedelta(days=7), "human_agent_tag")
    ),
}


class FakeClock:
    """A clock that moves only when told; ids sort by its time, then by creation."""

    def __init__(self, start: float = START) -> None:
        self._time = start
        self._count = itertools.count()

    def time(self) -> float:
        return self._time

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._time, UTC)

    def new_id(self) -> str:
        return f"{int(self._time * 1_000_000):016x}{next(self._count):08x}"

    def advance(self, seconds: float) -> None:
        self._time += seconds


@dataclass
class _StoredChat:
    chat: Chat
    outbox: dict[str, Queued] = field(default_factory=dict)
    legacy: list[Notification] = field(default_factory=list)


class FakeChats:
    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.stored: dict[str, _StoredChat] = {}

    def _all(self) -> list[Chat]:
        return [s.chat for s in self.stored.values()]

    def _sorted(self, chats: list[Chat], limit: int, key: str = "id", reverse: bool = False) -> list[Chat]:
        return sorted(chats, key=lambda c: getattr(c, key), reverse=reverse)[:limit]

    async def get(self, chat_id: str) -> Chat | None:
        found = self.stored.get(chat_id)
        return found.chat if found else None

    async def get_many(self, chat_ids: Sequence[str]) -> list[Chat]:
        return [self.stored[chat_id].chat for chat_id in dict.fromkeys(chat_ids) if chat_id in self.stored]

    async def open(self, chat: Chat) -> Chat:
        for stored in self.stored.values():
            if stored.chat.open_key is not None and stored.chat.open_key == chat.open_key:
                return stored.chat
        self.stored[chat.id] = _StoredChat(replace(chat, offer_version=chat.offer_version or 0))
        return self.stored[chat.id].chat

    async def open_many(self, chats: Sequence[Chat]) -> list[Chat]:
        return [await self.open(chat) for chat in chats]

    async def find_open(self, open_key: str) -> Chat | None:
        return next((s.chat for s in self.stored.values() if s.chat.open_key == open_key), None)

    async def postpone_many(self, postponements: Sequence[Postponement]) -> None:
        for p in postponements:
            await self.postpone(p.chat_id, p.active_at, p.due_at, p.last_message_at, p.messages_in)

    async def change(self, update: ChatUpdate) -> Written | None:
        stored = self.stored.get(update.before.id)
        if stored is None:
            return None
        current = stored.chat
        if current.offer_version != (update.before.offer_version or 0) or current.status not in update.guard.statuses:
            return None
        if update.guard.due_by is not None and (current.due_at is None or current.due_at > update.guard.due_by):
            return None
        queued = {self._clock.new_id(): note for note in update.notes}
        fields = {name: getattr(update.after, name) for name in update.fields}
        if queued:
            fields["outbox_at"] = update.before.outbox_at or self._clock.time()
        stored.chat = replace(current, **fields, offer_version=(current.offer_version or 0) + 1)
        stored.outbox.update(queued)
        shared = set(stored.outbox) != set(queued) or bool(stored.legacy)
        outbox = Outbox(
            stored.chat.id, tuple(sorted(queued.items())), tuple(stored.legacy), stored.chat.offer_version, shared
        )
        return Written(stored.chat, outbox)

    async def waiting(self, queue_id: str, limit: int) -> list[Chat]:
        chats = [c for c in self._all() if c.waiting_in == queue_id and c.status == "new" and c.waiting]
        return self._sorted(chats, limit)

    async def offered_in(self, queue_id: str, limit: int) -> list[Chat]:
        chats = [c for c in self._all() if c.queue_id == queue_id and c.status == "new" and not c.waiting]
        return self._sorted(chats, limit)

    async def offered_to_any(self, operator_ids: Sequence[str], limit: int) -> list[Chat]:
        chats = [c for c in self._all() if c.status == "new" and set(c.offered_to) & set(operator_ids)]
        return self._sorted(chats, limit)

    async def held_by(self, operator_ids: Sequence[str], queue_ids: Sequence[str], limit: int) -> list[Chat]:
        chats = [
            c
            for c in self._all()
            if c.status == "assigned" and c.operator_id in operator_ids and c.queue_id in queue_ids
        ]
        return self._sorted(chats, limit)

    async def offers_expired(self, now: float, limit: int) -> list[Chat]:
        chats = [c for c in self._all() if c.offer_expires_at is not None and c.offer_expires_at <= now]
        return self._sorted(chats, limit, "offer_expires_at")

    async def drop_offer_deadline(self, chat: Chat) -> None:
        stored = self.stored.get(chat.id)
        if stored is not None and stored.chat.status == chat.status:
            stored.chat = replace(stored.chat, offer_expires_at=None)

    async def queues_waiting(self) -> list[str]:
        return list(dict.fromkeys(c.waiting_in for c in self._all() if c.waiting_in is not None))

    async def due(self, now: float, limit: int) -> list[Chat]:
        chats = [c for c in self._all() if c.is_open and c.due_at is not None and c.due_at <= now]
        return self._sorted(chats, limit, "due_at")

    async def postpone(
        self,
        chat_id: str,
        active_at: float,
        due_at: float | None,
        last_message_at: datetime | None,
        messages_in: int = 1,
    ) -> None:
        stored = self.stored.get(chat_id)
        if stored is None or not stored.chat.is_open:
            return
        chat = stored.chat
        later: dict[str, Any] = {"active_at": max(chat.active_at or active_at, active_at)}
        if due_at is not None:
            later["due_at"] = max(chat.due_at or due_at, due_at)
        if last_message_at is not None:
            later["last_message_at"] = last_message_at
            later["messages_in"] = chat.messages_in + messages_in
        stored.chat = replace(chat, **later)

    async def reschedule(self, chat: Chat, due_at: float | None) -> None:
        stored = self.stored.get(chat.id)
        if stored is not None and stored.chat.due_at == chat.due_at:
            stored.chat = replace(stored.chat, due_at=due_at)

    async def stale_outboxes(self, before: float, limit: int) -> list[Outbox]:
        stale = [s for s in self.stored.values() if s.chat.outbox_at is not None and s.chat.outbox_at < before]
        return [
            Outbox(s.chat.id, tuple(sorted(s.outbox.items())), tuple(s.legacy), s.chat.offer_version)
            for s in stale[:limit]
        ]

    async def remove_published(self, outbox: Outbox, keys: Sequence[str], *, legacy: bool, whole: bool) -> None:
        stored = self.stored.get(outbox.chat_id)
        if stored is None or not (keys or legacy):
            return
        for key in keys:
            stored.outbox.pop(key, None)
        if legacy:
            stored.legacy.clear()
        if (whole and stored.chat.offer_version == outbox.version) or not (stored.outbox or stored.legacy):
            stored.chat = replace(stored.chat, outbox_at=None)

    async def remove_published_many(self, removals: Sequence[Removal]) -> None:
        for r in removals:
            await self.remove_published(r.outbox, r.keys, legacy=r.legacy, whole=r.whole)

    async def of_contact(self, contact_id: str) -> list[Chat]:
        return sorted((c for c in self._all() if c.contact_id == contact_id), key=lambda c: c.id, reverse=True)

    async def move_contact(self, chat: Chat, contact_id: str, contact_name: str) -> None:
        stored = self.stored[chat.id]
        open_key = stored.chat.open_key
        if open_key is not None:
            moved = f"{chat.channel_id}:{contact_id}"
            if not any(s.chat.open_key == moved for s in self.stored.values() if s.chat.id != chat.id):
                open_key = moved
        stored.chat = replace(stored.chat, contact_id=contact_id, contact_name=contact_name, open_key=open_key)

    async def rename_contact(self, contact_id: str, name: str) -> None:
        for stored in self.stored.values():
            if stored.chat.contact_id == contact_id:
                stored.chat = replace(stored.chat, contact_name=name)

    async def welcomed(self, chat_id: str) -> None:
        self._set(chat_id, welcome=None)

    async def replied(self, chat_id: str, at: datetime, seconds: float | None) -> None:
        stored = self.stored.get(chat_id)
        if stored is None:
            return
        first = {} if stored.chat.first_response_at else {"first_response_at": at, "first_response_seconds": seconds}
        self._set(chat_id, messages_out=stored.chat.messages_out + 1, **first)

    async def asked(self, chat_id: str) -> None:
        self._set(chat_id, csat_ask_at=None)

    async def questions_due(self, before: float, limit: int) -> list[Chat]:
        due = [c for c in self._all() if c.csat_ask_at is not None and c.csat_ask_at <= before]
        return self._sorted(due, limit, "csat_ask_at")

    async def awaiting_rating(self, rating_key: str) -> Chat | None:
        return next((c for c in self._all() if c.csat_key == rating_key), None)

    async def rate(self, chat_id: str, rating: Mapping[str, Any]) -> bool:
        stored = self.stored.get(chat_id)
        if stored is None or stored.chat.rating is not None:
            return False
        self._set(chat_id, rating=dict(rating), csat_key=None, csat_until=None)
        return True

    def _set(self, chat_id: str, **fields: Any) -> None:
        stored = self.stored.get(chat_id)
        if stored is not None:
            stored.chat = replace(stored.chat, **fields)

    async def open_chats(self) -> list[Chat]:
        return [c for status in OPEN_STATUSES for c in self._all() if c.status == status]

    async def page(
        self, visibility: Visibility, status: str | None, before: str | None, limit: int, label: str | None = None
    ) -> list[Chat]:
        chats = [
            c
            for c in self._all()
            if _visible(c, visibility)
            and (c.status == status if status else c.is_open)
            and (not before or c.id < before)
            and (label is None or label in c.labels)
        ]
        return self._sorted(chats, limit, reverse=True)

    async def set_labels(self, chat_id: str, labels: Sequence[str]) -> Chat | None:
        stored = self.stored.get(chat_id)
        if stored is None:
            return None
        stored.chat = replace(stored.chat, labels=tuple(labels))
        return stored.chat

    async def drop_label(self, name: str) -> None:
        for stored in self.stored.values():
            stored.chat = replace(stored.chat, labels=tuple(n for n in stored.chat.labels if n != name))

    async def seen_by(self, operator_id: str) -> dict[str, str]:
        return {
            c.id: c.contact_id
            for c in self._all()
            if c.operator_id == operator_id or (c.status == "new" and operator_id in c.offered_to)
        }

    async def latest_of_contact(self, contact_id: str) -> Chat | None:
        return max((c for c in self._all() if c.contact_id == contact_id), key=lambda c: c.id, default=None)

    async def open_ids(self, visibility: Visibility) -> list[str]:
        return [c.id for c in self._all() if c.is_open and _visible(c, visibility)]


def _visible(chat: Chat, visibility: Visibility) -> bool:
    me = visibility.operator_id
    return me is None or chat.operator_id == me or me in chat.offered_to


class FakeOperators:
    def __init__(self) -> None:
        self.stored: dict[str, Operator] = {}

    async def get(self, operator_id: str) -> Operator | None:
        return self.stored.get(operator_id)

    async def by_token(self, token_hash: str) -> Operator | None:
        return next((op for op in self.stored.values() if op.token_hash == token_hash), None)

    async def exists(self, operator_id: str) -> bool:
        return operator_id in self.stored

    async def many(self, operator_ids: Sequence[str]) -> list[Operator]:
        return [op for op in self.stored.values() if op.id in operator_ids]

    async def offline_ids(self) -> list[str]:
        return [op.id for op in self.stored.values() if op.status == "offline"]

    async def set_status(self, operator_id: str, status: str) -> None:
        if operator_id in self.stored:
            self.stored[operator_id] = replace(self.stored[operator_id], status=status)

    def _take(self, op: Operator, chat_id: str, at: float, **more: Any) -> None:
        self.stored[op.id] = replace(
            op, load=op.load + 1, holds=(*op.holds, chat_id), hold_at={**op.hold_at, chat_id: at}, **more
        )

    async def take_unit(self, operator_id: str, chat_id: str, *, load: int, online_only: bool, at: float) -> bool:
        op = self.stored.get(operator_id)
        if op is None or op.load != load or op.max_chats is None or op.max_chats <= load or chat_id in op.holds:
            return False
        if online_only and op.status != "online":
            return False
        self._take(op, chat_id, at, last_routed_at=at)
        return True

    async def record_unit(self, operator_id: str, chat_id: str, at: float) -> bool:
        op = self.stored.get(operator_id)
        if op is None or chat_id in op.holds:
            return False
        self._take(op, chat_id, at)
        return True

    async def release_unit(self, operator_id: str, chat_id: str) -> bool:
        op = self.stored.get(operator_id)
        if op is None or chat_id not in op.holds:
            return False
        hold_at = {k: v for k, v in op.hold_at.items() if k != chat_id}
        holds = tuple(c for c in op.holds if c != chat_id)
        self.stored[op.id] = replace(op, load=op.load - 1, holds=holds, hold_at=hold_at)
        return True

    async def holds(self, operator_id: str, chat_id: str) -> bool:
        op = self.stored.get(operator_id)
        return op is not None and chat_id in op.holds

    async def holdings(self) -> list[Holdings]:
        return [Holdings(op.id, op.holds, dict(op.hold_at)) for op in self.stored.values()]

    async def all(self, limit: int) -> list[Operator]:
        return sorted(self.stored.values(), key=lambda op: op.id)[:limit]

    async def add(self, operator: Operator) -> None:
        self.stored[operator.id] = operator

    async def save(self, operator: Operator, fields: Sequence[str]) -> None:
        if operator.id in self.stored:
            self.stored[operator.id] = replace(self.stored[operator.id], **{f: getattr(operator, f) for f in fields})

    async def delete(self, operator_id: str) -> None:
        self.stored.pop(operator_id, None)


class FakeQueues:
    def __init__(self) -> None:
        self.stored: dict[str, Queue] = {}

    async def get(self, queue_id: str) -> Queue | None:
        return self.stored.get(queue_id)

    async def all(self, limit: int) -> list[Queue]:
        return sorted(self.stored.values(), key=lambda q: q.id)[:limit]

    async def of_operator(self, operator_id: str) -> list[Queue]:
        return [q for q in self.stored.values() if operator_id in q.operator_ids]

    async def ids_with_any(self, operator_ids: Sequence[str]) -> list[str]:
        return [q.id for q in self.stored.values() if set(q.operator_ids) & set(operator_ids)]

    async def returning_ids(self) -> list[str]:
        return [q.id for q in self.stored.values() if q.on_operator_offline == "return"]

    async def add(self, queue: Queue) -> None:
        self.stored[queue.id] = queue

    async def save(self, queue: Queue, fields: Sequence[str]) -> None:
        if queue.id in self.stored:
            self.stored[queue.id] = replace(self.stored[queue.id], **{f: getattr(queue, f) for f in fields})

    async def delete(self, queue_id: str) -> None:
        self.stored.pop(queue_id, None)

    async def drop_operator(self, operator_id: str) -> None:
        for q in list(self.stored.values()):
            if operator_id in q.operator_ids:
                self.stored[q.id] = replace(q, operator_ids=tuple(op for op in q.operator_ids if op != operator_id))


class FakeChannels:
    def __init__(self) -> None:
        self.stored: dict[str, Channel] = {}

    async def get(self, channel_id: str) -> Channel | None:
        return self.stored.get(channel_id)

    async def all(self, limit: int) -> list[Channel]:
        return sorted(self.stored.values(), key=lambda c: c.id)[:limit]

    async def add(self, channel: Channel) -> bool:
        if any(c.provider == channel.provider and c.source == channel.source for c in self.stored.values()):
            return False
        self.stored[channel.id] = channel
        return True

    async def save(self, channel: Channel, fields: Sequence[str]) -> None:
        if channel.id in self.stored:
            self.stored[channel.id] = replace(self.stored[channel.id], **{f: getattr(channel, f) for f in fields})

    async def delete(self, channel_id: str) -> None:
        self.stored.pop(channel_id, None)

    async def record_registration(
        self, channel_id: str, registration: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> None:
        channel = self.stored[channel_id]
        self.stored[channel_id] = replace(
            channel, registration=dict(registration), settings={**channel.settings, **settings}
        )


class FakeRoutingSettings:
    """Reads the queues and channels as they are now (a cache that never keeps anything)."""

    def __init__(self, queues: FakeQueues, channels: FakeChannels) -> None:
        self._queues = queues
        self._channels = channels
        self.forgotten = 0

    async def queue(self, queue_id: str | None) -> Queue | None:
        return await self._queues.get(queue_id) if queue_id else None

    async def channel(self, channel_id: str) -> Channel | None:
        return await self._channels.get(channel_id)

    def forget(self) -> None:
        self.forgotten += 1


class FakeContacts:
    def __init__(self) -> None:
        self.stored: dict[str, Contact] = {}

    async def get(self, contact_id: str) -> Contact | None:
        return self.stored.get(contact_id)

    async def find_or_add(self, contact: Contact) -> Contact:
        for known in self.stored.values():
            if (known.channel_id, known.external_id) == (contact.channel_id, contact.external_id):
                while known.merged_into is not None and known.merged_into in self.stored:
                    known = self.stored[known.merged_into]
                return known
        self.stored[contact.id] = contact
        return contact

    async def add_many(self, contacts: Sequence[Contact]) -> list[Contact]:
        return [await self.find_or_add(contact) for contact in contacts]

    async def find(self, sender_key: str) -> Contact | None:
        known = next((c for c in self.stored.values() if f"{c.channel_id}:{c.external_id}" == sender_key), None)
        while known is not None and known.merged_into is not None and known.merged_into in self.stored:
            known = self.stored[known.merged_into]
        return known

    async def edit(self, contact_id: str, name: str | None, attributes: Mapping[str, str] | None) -> Contact | None:
        if contact_id not in self.stored:
            return None
        contact = self.stored[contact_id]
        if name is not None:
            contact = replace(contact, name=name, name_edited=True)
        if attributes is not None:
            contact = replace(contact, attributes=dict(attributes))
        self.stored[contact_id] = contact
        return contact

    async def absorb(self, contact: Contact) -> None:
        if contact.id in self.stored:
            self.stored[contact.id] = replace(
                self.stored[contact.id],
                identities=contact.identities,
                merged_ids=contact.merged_ids,
                attributes=dict(contact.attributes),
            )

    async def mark_merged(self, contact_id: str, into_id: str) -> None:
        if contact_id in self.stored:
            self.stored[contact_id] = replace(self.stored[contact_id], merged_into=into_id)

    async def resolve(self, contact_id: str, name: str, photo_url: str | None) -> Resolved | None:
        if contact_id not in self.stored:
            return None
        contact = self.stored[contact_id]
        named = not contact.name_edited
        self.stored[contact_id] = replace(
            contact, name=name if named else contact.name, photo_url=photo_url, profile_status="resolved"
        )
        renamed = contact.name != name or contact.profile_status != "pending"
        return Resolved(self.stored[contact_id], renamed) if named else None

    async def resolve_many(self, profiles: Sequence[Naming]) -> list[Resolved | None]:
        return [await self.resolve(p.contact_id, p.name, p.photo_url) for p in profiles]


class FakeMessages:
    def __init__(self) -> None:
        self.stored: dict[str, Message] = {}

    def _replies(self, channel_id: str, message_id: str | None, provider_message_id: str | None) -> list[Message]:
        return [
            m
            for m in self.stored.values()
            if m.channel_id == channel_id
            and m.direction == "outgoing"
            and (m.id == message_id if message_id is not None else m.provider_message_id == provider_message_id)
        ]

    async def get(self, message_id: str) -> Message | None:
        return self.stored.get(message_id)

    async def incoming(self, dedupe_key: str) -> Message | None:
        return next((m for m in self.stored.values() if m.dedupe_key == dedupe_key), None)

    async def add_incoming(self, message: Message) -> tuple[Message, bool]:
        stored = await self.incoming(message.dedupe_key or "")
        if stored is not None:
            return stored, False
        self.stored[message.id] = message
        return message, True

    async def add_incoming_many(self, messages: Sequence[Message]) -> list[bool]:
        return [(await self.add_incoming(message))[1] for message in messages]

    async def mark_routed(self, message_id: str) -> None:
        self.stored[message_id] = replace(self.stored[message_id], routed=True)

    async def mark_routed_many(self, message_ids: Sequence[str]) -> None:
        for message_id in message_ids:
            await self.mark_routed(message_id)

    async def add_reply(self, message: Message) -> bool:
        if message.id in self.stored:
            return False
        self.stored[message.id] = message
        return True

    async def add_note(self, note: Message) -> None:
        self.stored[note.id] = note

    async def mark_published(self, message_id: str) -> None:
        self.stored[message_id] = replace(self.stored[message_id], published=True, publish_due=None)

    async def fail(self, message_id: str, reason: str) -> None:
        self.stored[message_id] = replace(
            self.stored[message_id], status="failed", failure_reason=reason, publish_due=None
        )

    async def publish_due(self, before: float) -> list[Message]:
        due = [m for m in self.stored.values() if m.publish_due is not None and m.publish_due < before]
        return sorted(due, key=lambda m: m.id)

    async def unread_counts(self, chat_ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.stored.values():
            if m.chat_id in chat_ids and m.direction == "incoming" and not m.read:
                counts[m.chat_id] = counts.get(m.chat_id, 0) + 1
        return counts

    async def mark_read(self, chat_id: str) -> int:
        unread = [m for m in self.stored.values() if m.chat_id == chat_id and m.direction == "incoming" and not m.read]
        for m in unread:
            self.stored[m.id] = replace(m, read=True)
        return len(unread)

    async def page(self, chat_id: str, before: str | None, limit: int) -> list[Message]:
        found = [m for m in self.stored.values() if m.chat_id == chat_id and (not before or m.id < before)]
        return sorted(found, key=lambda m: m.id, reverse=True)[:limit]

    async def move_status(
        self,
        channel_id: str,
        *,
        provider_message_id: str | None = None,
        message_id: str | None = None,
        from_statuses: Sequence[str],
        to: str,
        failure_reason: str | None = None,
    ) -> Message | None:
        for m in self._replies(channel_id, message_id, provider_message_id):
            if m.status in from_statuses:
                changes: dict[str, Any] = {"status": to}
                if failure_reason is not None:
                    changes["failure_reason"] = failure_reason
                self.stored[m.id] = replace(m, **changes)
                return m
        return None

    async def reply_in_status(
        self, channel_id: str, status: str, *, provider_message_id: str | None = None, message_id: str | None = None
    ) -> Message | None:
        return next((m for m in self._replies(channel_id, message_id, provider_message_id) if m.status == status), None)

    async def sent_until(
        self, channel_id: str, recipient: str | None, statuses: Sequence[str], watermark: datetime
    ) -> list[str]:
        return [
            m.id
            for m in self.stored.values()
            if m.channel_id == channel_id
            and m.direction == "outgoing"
            and m.status in statuses
            and m.recipient == recipient
            and m.created_at is not None
            and m.created_at <= watermark
            and not (m.sent_at is not None and m.sent_at > watermark)
        ]

    async def store_attachment(
        self,
        message_id: str,
        index: int,
        *,
        status: str,
        file_id: str | None,
        size: int | None,
        content_type: str | None,
        failure_reason: str | None,
    ) -> None:
        message = self.stored.get(message_id)
        if message is None:
            return
        files = tuple(
            replace(
                f, status=status, file_id=file_id, size=size, content_type=content_type, failure_reason=failure_reason
            )
            if f.index == index
            else f
            for f in message.attachments
        )
        self.stored[message_id] = replace(message, attachments=files)

    async def last_from_customer(self, chat_id: str) -> Message | None:
        mine = [m for m in self.stored.values() if m.chat_id == chat_id and m.direction == "incoming"]
        return max(mine, key=lambda m: m.id) if mine else None

    async def with_file(self, file_id: str) -> Message | None:
        return next((m for m in self.stored.values() if any(f.file_id == file_id for f in m.attachments)), None)


class FakeLabels:
    def __init__(self) -> None:
        self.stored: dict[str, Label] = {}

    async def add(self, label: Label) -> bool:
        if any(other.name == label.name for other in self.stored.values()):
            return False
        self.stored[label.id] = label
        return True

    async def all(self) -> list[Label]:
        return sorted(self.stored.values(), key=lambda label: label.name)

    async def delete(self, label_id: str) -> Label | None:
        return self.stored.pop(label_id, None)


class FakeCannedResponses:
    def __init__(self) -> None:
        self.stored: dict[str, CannedResponse] = {}

    async def add(self, response: CannedResponse) -> None:
        self.stored[response.id] = response

    async def get(self, response_id: str) -> CannedResponse | None:
        return self.stored.get(response_id)

    async def shared(self) -> list[CannedResponse]:
        return [r for r in self.stored.values() if r.operator_id is None]

    async def usable(self, operator_id: str, queue_ids: Sequence[str]) -> list[CannedResponse]:
        return [
            r
            for r in self.stored.values()
            if r.operator_id == operator_id or (r.operator_id is None and r.queue_id in (None, *queue_ids))
        ]

    async def save(self, response: CannedResponse) -> None:
        self.stored[response.id] = response

    async def delete(self, response_id: str) -> None:
        self.stored.pop(response_id, None)


class FakeSearchIndex:
    def __init__(self) -> None:
        self.stored: dict[str, SearchEntry] = {}

    async def put(self, entry: SearchEntry) -> None:
        self.stored[entry.id] = entry

    async def put_many(self, entries: Sequence[SearchEntry]) -> None:
        for entry in entries:
            await self.put(entry)

    async def put_again(self, entries: Sequence[SearchEntry]) -> None:
        for entry in entries:
            await self.put(entry)

    async def with_word(self, word: str, before: str | None, limit: int) -> list[SearchEntry]:
        found = [replace(e, text="") for e in self.stored.values() if word in e.words and (not before or e.id < before)]
        return sorted(found, key=lambda e: e.id, reverse=True)[:limit]

    async def texts(self, entries: list[SearchEntry]) -> dict[str, str]:
        return {e.id: self.stored[e.id].text for e in entries if e.id in self.stored}


class FakeIdempotencyKeys:
    def __init__(self) -> None:
        self.stored: dict[str, KeyClaim] = {}

    async def claim(self, claim: KeyClaim) -> KeyClaim | None:
        return self.stored.setdefault(claim.id, claim)

    async def forget(self, claim: KeyClaim) -> None:
        if self.stored.get(claim.id) == claim:
            del self.stored[claim.id]


class FakeNotificationLog:
    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.stored: list[StoredNotification] = []
        self._event_ids: set[str] = set()

    async def record(self, notes: Sequence[ChatNotification]) -> None:
        for note in notes:
            if note.event_id not in self._event_ids:
                self._event_ids.add(note.event_id)
                self.stored.append(
                    StoredNotification(self._clock.new_id(), note.operator_id, note.event, note.model_dump_json())
                )

    async def after(self, operator_id: str, position: str, limit: int) -> list[StoredNotification]:
        return sorted((n for n in self.stored if n.operator_id == operator_id and n.id > position), key=lambda n: n.id)[
            :limit
        ]

    async def recent(self, operator_ids: Sequence[str], position: str) -> list[StoredNotification]:
        return sorted((n for n in self.stored if n.operator_id in operator_ids and n.id > position), key=lambda n: n.id)

    async def prune(self, position: str) -> int:
        kept = [n for n in self.stored if n.id >= position]
        pruned = len(self.stored) - len(kept)
        self.stored = kept
        return pruned

    def position_at(self, seconds: float) -> str:
        return f"{int(seconds * 1_000_000):016x}{0:08x}"

    def time_of(self, position: str) -> float:
        return int(position[:16], 16) / 1_000_000


class FakeStreamTickets:
    def __init__(self) -> None:
        self.stored: dict[str, tuple[str, float]] = {}

    async def issue(self, ticket_hash: str, operator_id: str, expires_at: float, now: float) -> None:
        self.stored = {k: v for k, v in self.stored.items() if v[1] >= now}
        self.stored[ticket_hash] = (operator_id, expires_at)

    async def spend(self, ticket_hash: str) -> tuple[str, float] | None:
        return self.stored.pop(ticket_hash, None)


class FakeOperatorQueues:
    """Each operator's queue, and what was published to it. A publish to an operator without a queue is refused, as
    the broker refuses a mandatory publish nothing is bound to; `down` refuses every publish."""

    def __init__(self) -> None:
        self.queues: dict[str, list[ChatNotification]] = {}
        self.down = False

    async def publish(self, note: ChatNotification) -> None:
        if self.down or note.operator_id not in self.queues:
            raise BrokerUnavailable(f"publish to operator.{note.operator_id} not confirmed")
        self.queues[note.operator_id].append(note)

    async def declare(self, operator_id: str) -> None:
        self.queues.setdefault(operator_id, [])

    async def delete(self, operator_id: str) -> None:
        self.queues.pop(operator_id, None)


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[Event] = []
        self.down = False

    async def publish(self, event: Event) -> None:
        if self.down:
            raise BrokerUnavailable(f"publish of {type(event).__name__} not confirmed")
        self.published.append(event)


class FakeMessengers:
    """Providers as the admin sees them: `telegram` is built in (no settings required), others need a secret and an
    outgoing URL; registering answers `registration`."""

    def __init__(self) -> None:
        self.registration = Registration(ok=True, detail="registered", settings_update={"secret_token": "generated"})

    def check_channel(self, provider: str, settings: Mapping[str, Any]) -> None:
        if provider == "unknown":
            raise Invalid("invalid_body", "unknown provider unknown")
        if provider != "telegram" and not (settings.get("secret") and settings.get("outgoing_url")):
            raise Invalid("invalid_body", "settings need secret, outgoing_url")

    async def register(self, channel: Channel) -> Registration:
        if channel.provider == "unknown":
            raise Invalid("unknown_provider", "unknown provider")
        return self.registration

    def reply_window(
        self, channel: Channel, last_customer_message_at: datetime | None, now: datetime, kind: str
    ) -> ReplyWindow:
        """The providers' own windows (`omni_providers.window`, pure): Telegram none, WhatsApp and Twilio 24 h and
        templates, Messenger 24 h and the HUMAN_AGENT tag."""
        policy = WINDOW_POLICIES.get(channel.provider, DeliveryPolicy())
        as_provider = ProviderChannel(channel.id, channel.name, channel.provider, "", "", dict(channel.settings))
        reply_kind: ReplyKind = "template" if kind == "template" else "text"
        decision = decide_reply(policy, as_provider, last_customer_message_at, now, reply_kind)
        return ReplyWindow(decision.verdict, decision.window_ends_at, decision.reason)


class FakeParkingLots:
    def __init__(self) -> None:
        self.parked: dict[str, dict[str, Any]] = {}

    async def list(self, queue: str | None, limit: int) -> list[dict[str, Any]]:
        return list(self.parked.values())[:limit]

    async def find(self, parked_id: str) -> dict[str, Any] | None:
        return self.parked.get(parked_id)

    async def replay(self, queue: str | None, ids: set[str] | None, *, discard: bool) -> int:
        chosen = [k for k in self.parked if ids is None or k in ids]
        for key in chosen:
            del self.parked[key]
        return len(chosen)


@dataclass
class FakeDownload:
    data: bytes

    @property
    def length(self) -> int:
        return len(self.data)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.data


class FakeFiles:
    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.described: dict[str, Upload] = {}

    async def open(self, file_id: str) -> FakeDownload | None:
        data = self.stored.get(file_id)
        return FakeDownload(data) if data is not None else None

    async def describe(self, file_id: str) -> Upload | None:
        if file_id not in self.stored:
            return None
        return self.described.get(file_id) or Upload(file_id, file_id, None, len(self.stored[file_id]))

    async def put(
        self, file_name: str, content_type: str | None, chunks: AsyncIterable[bytes], max_bytes: int, uploaded_by: str
    ) -> Upload:
        data = b""
        async for chunk in chunks:
            data += chunk
            if len(data) > max_bytes:
                raise TooLarge("file_too_large", f"the file is larger than the limit of {max_bytes} bytes")
        file_id = f"file-{len(self.stored) + 1}"
        self.stored[file_id] = data
        self.described[file_id] = Upload(file_id, file_name, content_type, len(data), uploaded_by)
        return self.described[file_id]


class FakeRouterInstances:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    async def beat(self, instance: str, now: float) -> None:
        self.seen[instance] = now

    async def live(self, since: float) -> list[str]:
        return [k for k, v in self.seen.items() if v > since]

    async def forget(self, before: float) -> None:
        self.seen = {k: v for k, v in self.seen.items() if v >= before}

    async def leave(self, instance: str) -> None:
        self.seen.pop(instance, None)


class FakeApiTokens:
    def __init__(self) -> None:
        self.tokens: dict[str, ApiToken] = {}

    async def add(self, token: ApiToken) -> None:
        if any(t.token_hash == token.token_hash for t in self.tokens.values()):
            raise ValueError("duplicate token hash")  # the unique index
        self.tokens[token.id] = token

    async def by_hash(self, token_hash: str) -> ApiToken | None:
        return next((t for t in self.tokens.values() if t.token_hash == token_hash), None)

    async def all(self, limit: int) -> list[ApiToken]:
        return sorted(self.tokens.values(), key=lambda t: t.id)[:limit]

    async def delete(self, token_id: str) -> bool:
        return self.tokens.pop(token_id, None) is not None


class FakeAuditLog:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def add(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    async def page(self, before: str | None, limit: int) -> list[AuditEntry]:
        newest_first = sorted(self.entries, key=lambda e: e.id, reverse=True)
        return [e for e in newest_first if before is None or e.id < before][:limit]


class FakeWebhookSubscriptions:
    def __init__(self) -> None:
        self.stored: dict[str, Subscription] = {}

    async def add(self, subscription: Subscription) -> None:
        self.stored[subscription.id] = subscription

    async def get(self, subscription_id: str) -> Subscription | None:
        return self.stored.get(subscription_id)

    async def all(self, limit: int) -> list[Subscription]:
        return sorted(self.stored.values(), key=lambda s: s.id)[:limit]

    async def delete(self, subscription_id: str) -> bool:
        return self.stored.pop(subscription_id, None) is not None

    async def wanting(self, event: str) -> list[Subscription]:
        return [s for s in sorted(self.stored.values(), key=lambda s: s.id) if s.active and event in s.events]


class FakeWebhookDeliveries:
    """Attempts as the dispatcher records them (a test adds them)."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, DeliveryAttempt]] = []

    async def page(self, subscription_id: str, after: str | None, limit: int) -> list[DeliveryAttempt]:
        mine = sorted((a for s, a in self.attempts if s == subscription_id), key=lambda a: a.id)
        return [a for a in mine if after is None or a.id > after][:limit]


class FakeDestinations:
    """Refuses what the real check refuses without resolving names: other schemes, loopback and private hosts."""

    REFUSED = ("127.", "10.", "192.168.", "localhost")

    async def check(self, url: str) -> None:
        host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        if not url.startswith(("http://", "https://")) or host.startswith(self.REFUSED):
            raise Invalid("invalid_url", f"refused to call {host}: a private address")


class FakeReports:
    """Reports computed in Python over the fake chats, as the aggregation pipelines compute them."""

    def __init__(self, chats: FakeChats) -> None:
        self._chats = chats

    def _selected(self, field: str, filters: ReportFilter) -> list[Chat]:
        covered = filters.period
        return [
            c
            for c in self._chats._all()
            if _ts(c, field) is not None
            and covered.start <= (_ts(c, field) or 0) < covered.end
            and (filters.queue_id is None or c.queue_id == filters.queue_id)
            and (filters.operator_id is None or c.operator_id == filters.operator_id)
        ]

    async def summary(self, filters: ReportFilter) -> Summary:
        opened, closed = self._selected("created", filters), self._selected("closed", filters)
        scores = [int(c.rating["score"]) for c in closed if c.rating]
        days: dict[str, list[int]] = {}
        for index, (chats, which) in enumerate(((opened, "created"), (closed, "closed"))):
            for chat in chats:
                days.setdefault(day_of(int((_ts(chat, which) or 0) // 86400)), [0, 0])[index] += 1
        return Summary(
            chats_opened=len(opened),
            chats_closed=len(closed),
            messages_in=sum(c.messages_in for c in opened),
            messages_out=sum(c.messages_out for c in opened),
            first_response=_percentiles([c.first_response_seconds for c in opened]),
            resolution=_percentiles([c.resolution_seconds for c in closed]),
            csat_responses=len(scores),
            csat_average=sum(scores) / len(scores) if scores else None,
            days={day: (n[0], n[1]) for day, n in days.items()},
        )

    async def chats(self, covered: Period) -> AsyncIterator[Chat]:
        chats = [c for c in self._chats._all() if covered.start <= (_ts(c, "created") or -1) < covered.end]
        for chat in sorted(chats, key=lambda c: (_ts(c, "created"), c.id)):
            yield chat


def _ts(chat: Chat, field: str) -> float | None:
    if field == "closed":
        return chat.closed_ts
    return chat.created_at.timestamp() if chat.created_at else None


def _percentiles(values: list[float | None]) -> Percentiles:
    known = sorted(v for v in values if v is not None)
    if not known:
        return Percentiles()
    return Percentiles(known[rank(len(known), 0.5)], known[rank(len(known), 0.9)])
