"""A customer's message (`message.received`): its contact, its open chat, the message stored once, then routing
and the requests for the sender's profile and the message's files.

`receive` takes one message; `receive_batch` takes what a partition had ready and writes it in bulk: the returning
customers' open chats read again, those the router knows (KnownChats) in one read by `_id`, the new customers'
contacts in one unordered insert and the new chats in another (the unique indexes decide a race: the
winner's is read), the messages in one unordered insert (the unique dedupe key refuses each repeat on its own), the
chats' due times in one bulk write, the chats nobody holds or was offered routed with one acquisition of each
queue's lock (Engine.route_many: the waiting line and the operators read once, each claim atomic, each change
compare-and-set), the notifications in one insert, the publishes awaited together, the `routed` marks in one bulk
write. Left to `receive`, one by one after it (with every later message of its chat in the batch): a repeat inside
the batch, a message of an unknown channel, a rating from a customer without an open chat (it may answer a closed
chat's question), a returning customer's message stored before whose chat closed since, and a message whose
requests or notifications the broker did not confirm.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from omni_contracts import AttachmentRequested, MessageReceived, ProfileRequested, UnifiedMessage
from omni_contracts.events import Event
from omni_router.domain.csat import parse_rating
from omni_router.domain.errors import NotFound
from omni_router.domain.hours import opening
from omni_router.domain.model import (
    Channel,
    Chat,
    Contact,
    FileRef,
    Message,
    dedupe_key,
    default_contact_name,
    sender_key,
)
from omni_router.domain.notifications import audience
from omni_router.domain.views import chat_view, message_view
from omni_router.service_layer.courtesy import Courtesy
from omni_router.service_layer.engine import Arrived, Engine
from omni_router.service_layer.indexing import Indexer
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.notices import Notices, Telling
from omni_router.service_layer.ports import (
    BrokerUnavailable,
    Chats,
    Clock,
    Contacts,
    Events,
    Messages,
    RoutingSettings,
)

T = TypeVar("T")

# Contacts a router keeps by sender key (the least recently used forgotten first), and how long it keeps one whose
# profile is pending before reading it again (profile requests stop soon after the profile was resolved).
CONTACTS_KEPT = 20_000
PENDING_CONTACT_SECONDS = 10.0
# Open chats' ids a router keeps by open key (the least recently used forgotten first).
CHATS_KEPT = 20_000


class KnownContacts:
    """Contacts as the router's input found them, by sender key. A contact is never deleted, but an admin's merge (in
    any router process) makes a sender's contact another one, the contact kept, and moves its chats there; an edit
    renames it. So a kept contact is trusted only where its open chat, read for every batch by the contact's
    `open_key`, is found and names it; before a chat is opened for it, or when its open chat names another contact,
    it is read again (Inbox._read_kept_again). The profile status is read again while it is pending."""

    def __init__(self, clock: Clock, size: int = CONTACTS_KEPT) -> None:
        self._clock = clock
        self._size = size
        self._known: OrderedDict[str, tuple[Contact, float]] = OrderedDict()

    def get(self, key: str) -> Contact | None:
        found = self._known.get(key)
        if found is None:
            return None
        contact, at = found
        if contact.profile_status == "pending" and self._clock.time() - at > PENDING_CONTACT_SECONDS:
            del self._known[key]
            return None
        self._known.move_to_end(key)
        return contact

    def keep(self, key: str, contact: Contact) -> None:
        self._known[key] = (contact, self._clock.time())
        self._known.move_to_end(key)
        while len(self._known) > self._size:
            self._known.popitem(last=False)


class KnownChats:
    """Which chat each sender's open chat was when this router last read or opened it, by open key: a guess of which
    chat to read, never its state. A batch still reads every chat it uses (the guessed ones together, in one read by
    `_id`), and a guess holds only if the chat read still has the open key: as the unique sparse `open_key` is
    removed in the write that closes a chat (or moved in a contact merge), a chat that has it is the one chat that
    `find_open` would have read at that moment, whichever router, operator or sweep changed it meanwhile. A wrong
    guess is forgotten and costs the `find_open` it saved."""

    def __init__(self, size: int = CHATS_KEPT) -> None:
        self._size = size
        self._known: OrderedDict[str, str] = OrderedDict()

    def get(self, open_key: str) -> str | None:
        return self._known.get(open_key)

    def keep(self, open_key: str, chat_id: str) -> None:
        self._known[open_key] = chat_id
        self._known.move_to_end(open_key)
        while len(self._known) > self._size:
            self._known.popitem(last=False)

    def forget(self, open_key: str) -> None:
        self._known.pop(open_key, None)


@dataclass
class _Item:
    """A message of a batch on its way: where it is in the batch, and what was found for it."""

    position: int
    message: UnifiedMessage
    channel: Channel
    key: str
    contact: Contact | None = None
    kept: bool = False  # its contact came from KnownContacts (not read from the database for this batch)
    chat: Chat | None = None
    stored: Message | None = None


class _Left:
    """The positions left to `receive`, and for each sender (chat) the first one left: its later messages are left
    too."""

    def __init__(self) -> None:
        self.positions: set[int] = set()
        self._first: dict[str, int] = {}

    def add(self, position: int, key: str) -> None:
        self.positions.add(position)
        self._first[key] = min(position, self._first.get(key, position))

    def behind(self, position: int, key: str) -> bool:
        return self._first.get(key, position + 1) < position

    def keep(self, items: Iterable[_Item], takes: Callable[[_Item], bool]) -> list[_Item]:
        """The items, in order, that `takes` takes and that follow nothing left of their chat; the others left."""
        kept = []
        for item in items:
            if not self.behind(item.position, item.key) and takes(item):
                kept.append(item)
            else:
                self.add(item.position, item.key)
        return kept


class Inbox:
    def __init__(
        self,
        *,
        chats: Chats,
        contacts: Contacts,
        messages: Messages,
        settings: RoutingSettings,
        engine: Engine,
        notices: Notices,
        courtesy: Courtesy,
        events: Events,
        indexer: Indexer,
        integration: IntegrationEvents,
        clock: Clock,
    ) -> None:
        self._indexer = indexer
        self._notices = notices
        self._known = KnownContacts(clock)
        self._open = KnownChats()
        self._integration = integration
        self._chats = chats
        self._contacts = contacts
        self._messages = messages
        self._settings = settings
        self._engine = engine
        self._courtesy = courtesy
        self._events = events
        self._clock = clock

    async def receive(self, event: MessageReceived) -> None:
        """Safe to repeat: a message stored but not yet routed is routed again; a routed one is left alone."""
        message = event.message
        stored = await self._messages.incoming(dedupe_key(message.channel_id, message.provider_message_id))
        if stored is not None and stored.routed:
            return
        channel = await self._settings.channel(message.channel_id)
        if channel is None:
            raise NotFound("channel_not_found", f"channel {message.channel_id} does not exist")
        candidate = self._new_contact(channel, message)
        contact = await self._contacts.find_or_add(candidate)
        chat, stored = await self._store(channel, contact, message, stored)
        await self._announce(chat, stored)
        if self._courtesy.answers_question(chat, stored):  # a rating, stored on its closed chat: nothing to route
            await self._courtesy.record_rating(chat, stored)
            await self._messages.mark_routed(stored.id)
            return
        await self._courtesy.welcome(chat, contact)
        await self._engine.route(chat, stored)
        await self._indexer.message(stored, contact.id)  # before `routed`: a redelivery indexes it again
        if contact.id == candidate.id:  # added now; a resolved profile indexes it again (Updates)
            await self._indexer.contact(contact.id, contact.name, at=contact.created_at)
        if contact.profile_status == "pending":
            await self._events.publish(self._profile_request(channel, contact, message))
        for request in self._file_requests(channel, chat, stored, message):
            await self._events.publish(request)
        await self._messages.mark_routed(stored.id)

    def _profile_request(self, channel: Channel, contact: Contact, message: UnifiedMessage) -> ProfileRequested:
        return ProfileRequested(
            contact_id=contact.id,
            channel_id=channel.id,
            provider=channel.provider,
            external_id=message.sender,
            sender_name=message.sender_name,
        )

    def _file_requests(
        self, channel: Channel, chat: Chat, stored: Message, message: UnifiedMessage
    ) -> list[AttachmentRequested]:
        return [
            AttachmentRequested(
                message_id=stored.id,
                chat_id=chat.id,
                channel_id=channel.id,
                provider=channel.provider,
                index=index,
                attachment=attachment,
            )
            for index, attachment in enumerate(message.attachments)
        ]

    async def receive_batch(self, events: Sequence[MessageReceived]) -> set[int]:
        """A partition's batch, in bulk (see the module); answers the positions left to `receive`. Safe to repeat as
        `receive` is: a message stored before is not stored again, and one stored but not routed is routed now.
        A publish the broker did not confirm leaves its message (and its chat's later ones) to `receive`; a write that
        failed raises, and then every message of the batch goes to `receive` (the consumer)."""
        left = _Left()
        items: list[_Item] = []
        for position, event in enumerate(events):
            message = event.message
            key = sender_key(message.channel_id, message.sender)
            channel = await self._settings.channel(message.channel_id)
            if channel is None or left.behind(position, key):
                left.add(position, key)
            else:
                items.append(_Item(position, message, channel, key))
        added = await self._find_contacts(items)
        await self._find_chats(items, added)
        # A rating (a message starting with 1-5) from a returning customer with no open chat may answer a closed
        # chat's question: `receive` decides.
        items = left.keep(
            items,
            lambda item: item.chat is not None or item.key in added or parse_rating(item.message.text) is None,
        )
        await self._open_chats(items, added)
        seen: set[str] = set()

        def routable(item: _Item) -> bool:
            """To an open chat (found or opened now), and not a repeat inside the batch."""
            repeat = dedupe_key(item.message.channel_id, item.message.provider_message_id) in seen
            seen.add(dedupe_key(item.message.channel_id, item.message.provider_message_id))
            return item.chat is not None and not repeat

        items = left.keep(items, routable)
        postponed = await self._store_all(items)
        items = left.keep(items, lambda item: item.stored is not None)
        routing = [item for item in items if not _stored(item).routed]
        # Side by side, before anyone is told: the chats' due times, the search entries (before `routed`, as `receive`
        # does: a redelivery indexes them again), the requests and the webhooks' events.
        _, _, asked = await _all(
            self._engine.postpone_many(postponed),
            self._indexer.batch([(_stored(item), _contact(item).id) for item in routing], list(added.values())),
            self._ask_all(routing),
        )
        routing = left.keep(routing, lambda item: item.position not in asked)
        arrived = await self._route_new(routing)
        told = await self._tell_all(routing, arrived)
        routed = left.keep(routing, lambda item: item.position not in told)
        await self._messages.mark_routed_many([_stored(item).id for item in routed])
        return left.positions

    async def _find_contacts(self, items: Sequence[_Item]) -> dict[str, Contact]:
        """Each sender's contact: kept (KnownContacts), or else added for the senders not kept, all in one write, the
        unique sender key refusing each that has one (a returning customer this router does not keep, or one another
        router added first), whose contact is then read. Answers the contacts stored now, by sender key."""
        missing: dict[str, Contact] = {}
        for item in items:
            if item.key not in missing and self._known.get(item.key) is None:
                missing[item.key] = self._new_contact(item.channel, item.message)
        added: dict[str, Contact] = {}
        candidates = list(missing.values())
        for key, candidate, contact in zip(missing, candidates, await self._contacts.add_many(candidates), strict=True):
            self._known.keep(key, contact)
            if contact.id == candidate.id:  # added now; a resolved profile indexes it again (Updates)
                added[key] = contact
        for item in items:
            item.contact, item.kept = self._known.get(item.key), item.key not in missing
        return added

    async def _open_chats(self, items: Sequence[_Item], added: dict[str, Contact]) -> None:
        """A chat for each sender without an open one, opened by its first message in the batch, all in one write (the
        unique `open_key` decides a race: the chat stored first is read). A returning customer's message stored
        before (a redelivery after its chat closed) is left to `receive`, which finds it without opening a chat."""
        first: dict[str, _Item] = {}
        for item in items:
            if item.chat is None and _open_key(item) not in first:
                first[_open_key(item)] = item
        returning = [item for item in first.values() if item.key not in added]
        found = await _together(
            self._messages.incoming(dedupe_key(i.message.channel_id, i.message.provider_message_id)) for i in returning
        )
        for item, stored in zip(returning, found, strict=True):
            if stored is not None:
                del first[_open_key(item)]
        fresh = [await self._new_chat(item.channel, _contact(item), item.message) for item in first.values()]
        chats = dict(zip(first, await self._chats.open_many(fresh), strict=True))
        for key, chat in chats.items():
            self._open.keep(key, chat.id)
        for item in items:
            if item.chat is None:
                item.chat = chats.get(_open_key(item))

    async def _find_chats(self, items: Sequence[_Item], added: dict[str, Contact]) -> None:
        """Each sender's open chat, read for every batch (operators and the sweeps of any router change and close
        chats); a contact added now has none. The chats this router knows (KnownChats) in one read by `_id`, each
        taken only if it still has its open key; the others by their `open_key` (one indexed field; `$in` on it would
        read every chat on the nx-27017 stand-in), side by side."""
        keys = list(dict.fromkeys(_open_key(item) for item in items if item.key not in added))
        guessed = {key: chat_id for key in keys if (chat_id := self._open.get(key)) is not None}
        read = {chat.id: chat for chat in await self._chats.get_many(list(guessed.values()))} if guessed else {}
        chats = {key: chat for key, chat_id in guessed.items() if (chat := read.get(chat_id)) and chat.open_key == key}
        missing = [key for key in keys if key not in chats]
        for key, found in zip(missing, await _together(self._chats.find_open(k) for k in missing), strict=True):
            if found is not None:
                chats[key] = found
        for key in keys:
            if key in chats:
                self._open.keep(key, chats[key].id)
            else:
                self._open.forget(key)
        for item in items:
            item.chat = chats.get(_open_key(item))
        await self._read_kept_again(items)

    async def _read_kept_again(self, items: Sequence[_Item]) -> None:
        """The kept contacts (KnownContacts) about to get a chat opened, or whose open chat names another contact,
        read again by sender key (following merges: Contacts.find), the senders side by side; where a sender's
        contact became another one (merged into it), that one's open chat is looked up. One indexed read for each new
        chat of a customer this router kept, none for a message to an open chat."""
        doubtful = {
            item.key: _contact(item)
            for item in items
            if item.kept and (item.chat is None or item.chat.contact_id != _contact(item).id)
        }
        fresh: dict[str, Contact] = {}
        for key, contact in zip(doubtful, await _together(self._contacts.find(key) for key in doubtful), strict=True):
            if contact is not None:
                self._known.keep(key, contact)
                fresh[key] = contact
        moved = {key for key, contact in fresh.items() if contact.id != doubtful[key].id}
        for item in items:
            item.contact = fresh.get(item.key, item.contact)
        keys = list(dict.fromkeys(_open_key(item) for item in items if item.key in moved))
        chats = dict(zip(keys, await _together(self._chats.find_open(k) for k in keys), strict=True))
        for item in items:
            if item.key in moved:
                item.chat = chats.get(_open_key(item))

    async def _store_all(self, items: Sequence[_Item]) -> list[tuple[Chat, datetime | None, int]]:
        """The messages in one write; a repeat answers the message stored before (and its chat must be this one).
        Answers what postpones the chats (Engine.postpone_many) for the messages stored now."""
        fresh = [self._new_message(self._clock.new_id(), _chat(item), item.message) for item in items]
        for item, message, new in zip(items, fresh, await self._messages.add_incoming_many(fresh), strict=True):
            if new:
                item.stored = message
                continue
            stored = await self._messages.incoming(message.dedupe_key or "")
            item.stored = stored if stored is not None and stored.chat_id == _chat(item).id else None
        last: dict[str, tuple[Chat, datetime | None, int]] = {}
        for item, message in zip(items, fresh, strict=True):
            if item.stored is message:
                counted = last.get(_chat(item).id, (_chat(item), None, 0))[2]
                last[_chat(item).id] = (_chat(item), message.sent_at, counted + 1)
        return list(last.values())

    async def _ask_all(self, items: Sequence[_Item]) -> set[int]:
        """The profile and file requests of every item, side by side (each item's in order), before anyone is told:
        an item whose requests the broker did not confirm is left to `receive` (with its chat's later ones) before any
        of them was told, so nobody is told twice. Answers their positions."""
        profiled: set[str] = set()

        async def requests(item: _Item) -> int | None:
            contact = item.contact
            wanted: list[Event] = []
            if contact is not None and contact.profile_status == "pending" and contact.id not in profiled:
                profiled.add(contact.id)
                wanted.append(self._profile_request(item.channel, contact, item.message))
            wanted.extend(self._file_requests(item.channel, _chat(item), _stored(item), item.message))
            try:
                await self._announce(_chat(item), _stored(item))
                for request in wanted:
                    await self._events.publish(request)
            except BrokerUnavailable:
                return item.position
            return None

        return {position for position in await _together(requests(item) for item in items) if position is not None}

    async def _route_new(self, items: Sequence[_Item]) -> dict[str, Arrived]:
        """The chats nobody holds or was offered (new ones among them): the greetings they owe first, then routed
        with the first of their messages here (Engine.route_many), each queue's under one acquisition of its lock."""
        first: dict[str, _Item] = {}
        for item in items:
            if not audience(_chat(item)):
                first.setdefault(_chat(item).id, item)
        await _together(self._courtesy.welcome(_chat(item), _contact(item)) for item in first.values())
        return await self._engine.route_many([(_chat(item), _stored(item)) for item in first.values()])

    async def _tell_all(self, items: Sequence[_Item], arrived: dict[str, Arrived]) -> set[int]:
        """What `Engine.route` does for a chat someone holds or was offered: `message.new` to them, keyed by the
        message, for every item at once; for a chat routed now (`arrived`), to whoever it was offered, except the
        message its offer carried. Answers the positions of those the broker did not confirm (with their chat's
        later ones: not marked routed, `receive` tells them again with the same event ids)."""
        now: dict[str, Chat | None] = {}
        for chat_id, done in arrived.items():
            now[chat_id] = done.chat if done.chat is not None else await self._chats.get(chat_id)
        told: list[Telling] = []
        telling: list[_Item] = []
        first: set[str] = set()
        for item in items:
            chat, stored = _chat(item), _stored(item)
            if chat.id in arrived:
                carried = arrived[chat.id].carried and chat.id not in first
                first.add(chat.id)
                if carried:
                    continue  # the offer carried it: the first of its chat here, what the chat was routed with
                chat = now[chat.id] or chat
            if not chat.is_open or not audience(chat):
                continue  # it waits: whoever is offered it later reads its messages
            told.append(Telling("message.new", chat.id, audience(chat), {"message": message_view(stored)}, stored.id))
            telling.append(item)
        return {telling[n].position for n in await self._notices.tell_many(told)}

    async def _store(
        self, channel: Channel, contact: Contact, message: UnifiedMessage, stored: Message | None
    ) -> tuple[Chat, Message]:
        """The message stored once, and its chat as routing is to decide on it (its changes are compare-and-set)."""
        current: Chat | None
        if stored is None:
            message_id = self._clock.new_id()
            current = await self._courtesy.rated_chat(contact, message)
            if current is None:
                current = await self._chats.open(await self._new_chat(channel, contact, message))
            stored, new = await self._messages.add_incoming(self._new_message(message_id, current, message))
            if new and current.is_open:
                await self._engine.postpone_completion(current, last_message_at=stored.created_at)
            else:
                current = await self._chats.get(stored.chat_id)
        else:
            current = await self._chats.get(stored.chat_id)
        if current is None:
            raise NotFound("chat_not_found", f"chat {stored.chat_id} vanished")
        return current, stored

    async def _announce(self, chat: Chat, message: Message) -> None:
        """The webhooks' `chat.created` (with the message that opened the chat) and `message.created`, under ids of
        their cause: a redelivery of the message (not yet routed) announces them again under the same ids."""
        if chat.opened_by is not None and chat.opened_by == message.dedupe_key:
            await self._integration.emit("chat.created", {"chat": chat_view(chat)}, key=chat.id)
        await self._integration.emit("message.created", {"message": message_view(message)}, key=message.id)

    def _new_contact(self, channel: Channel, message: UnifiedMessage) -> Contact:
        return Contact(
            id=self._clock.new_id(),
            channel_id=channel.id,
            external_id=message.sender,
            name=message.sender_name or default_contact_name(channel, message.sender),
            profile_status="pending",
            created_at=self._clock.now(),
        )

    async def _new_chat(self, channel: Channel, contact: Contact, message: UnifiedMessage) -> Chat:
        """A chat as it opens: outside its queue's business hours it waits for the next opening; the greeting or
        out-of-hours answer it owes its customer goes with it, under the id it will be stored with."""
        start = opening(await self._settings.queue(channel.queue_id), self._clock.now())
        chat_id = self._clock.new_id()
        return Chat(
            id=chat_id,
            not_before=start.not_before,
            welcome={"id": self._clock.new_id(), "text": start.text} if start.text else None,
            open_key=open_key(channel, contact),
            opened_by=dedupe_key(message.channel_id, message.provider_message_id),
            channel_id=channel.id,
            queue_id=channel.queue_id or "",
            contact_id=contact.id,
            contact_name=contact.name,
            status="new",
            offer_version=0,
            created_at=message.sent_at,
            last_message_at=message.sent_at,
            # `active_at` and `due_at` are set as the first message is stored (postpone_completion).
        )

    def _new_message(self, message_id: str, chat: Chat, message: UnifiedMessage) -> Message:
        return Message(
            id=message_id,
            dedupe_key=dedupe_key(message.channel_id, message.provider_message_id),
            chat_id=chat.id,
            channel_id=message.channel_id,
            direction="incoming",
            type=message.type,
            text=message.text,
            sender=message.sender,
            provider_message_id=message.provider_message_id,
            attachments=tuple(
                FileRef(index=index, file_name=a.file_name, content_type=a.content_type, size=a.size)
                for index, a in enumerate(message.attachments)
            ),
            location=message.location.model_dump() if message.location else None,
            status="received",
            read=False,
            routed=False,
            sent_at=message.sent_at,
            created_at=self._clock.now(),
        )


def open_key(channel: Channel, contact: Contact) -> str:
    """What makes a chat the one open chat of its contact on its channel."""
    return f"{channel.id}:{contact.id}"


def _open_key(item: _Item) -> str:
    assert item.contact is not None
    return open_key(item.channel, item.contact)


def _chat(item: _Item) -> Chat:
    assert item.chat is not None
    return item.chat


def _contact(item: _Item) -> Contact:
    assert item.contact is not None
    return item.contact


def _stored(item: _Item) -> Message:
    assert item.stored is not None
    return item.stored


U = TypeVar("U")
V = TypeVar("V")


async def _all(first: Awaitable[T], second: Awaitable[U], third: Awaitable[V]) -> tuple[T, U, V]:
    """Three different steps awaited side by side; the first failure raises once all are done."""
    outcomes = await asyncio.gather(first, second, third, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes[0], outcomes[1], outcomes[2]  # type: ignore[return-value]


async def _together(steps: Iterable[Awaitable[T]]) -> list[T]:
    """Every step awaited side by side; the first failure raises once all are done (none is left running)."""
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    done: list[T] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        done.append(outcome)
    return done
