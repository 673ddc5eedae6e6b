"""What the use cases need from the world outside, as Protocols: storage, the broker, the messengers, the clock.

The adapters implement them for MongoDB and RabbitMQ; tests/support/fakes.py implements them in memory, and the
contract tests run the same behaviours against both. Every write a use case relies on being atomic is one call
here (a chat's compare-and-set change, a capacity claim), and says so.
"""

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from omni_contracts import ChatNotification
from omni_contracts.events import Event
from omni_router.domain.access import Visibility
from omni_router.domain.canned import CannedResponse
from omni_router.domain.capacity import Holdings
from omni_router.domain.changes import ChatUpdate
from omni_router.domain.integration import DeliveryAttempt, Subscription
from omni_router.domain.labels import Label
from omni_router.domain.model import Channel, Chat, Contact, Message, Operator, Queue, Upload
from omni_router.domain.notifications import Outbox
from omni_router.domain.replies import KeyClaim, ReplyWindow
from omni_router.domain.reports import Period, ReportFilter, Summary
from omni_router.domain.search import SearchEntry
from omni_router.domain.tokens import ApiToken, AuditEntry
from omni_runtime.errors import BrokerUnavailable

__all__ = [
    "ApiTokens",
    "AuditLog",
    "BrokerUnavailable",  # what a publisher raises when the broker did not confirm (the consumers retry on it)
    "CannedResponses",
    "Channels",
    "Chats",
    "Clock",
    "Contacts",
    "Destinations",
    "Events",
    "Files",
    "IdempotencyKeys",
    "Labels",
    "Messages",
    "Messengers",
    "NotificationLog",
    "OperatorQueues",
    "Operators",
    "ParkingLots",
    "Postponement",
    "Queues",
    "Removal",
    "Reports",
    "RouterInstances",
    "RoutingSettings",
    "SearchIndex",
    "StoredNotification",
    "StreamTickets",
    "WebhookDeliveries",
    "WebhookSubscriptions",
    "Written",
]


class Clock(Protocol):
    def time(self) -> float:
        """Epoch seconds: the times the sweeps compare (offer deadlines, due times)."""
        ...

    def now(self) -> datetime:
        """The time shown to people (created_at, closed_at), aware, in UTC."""
        ...

    def new_id(self) -> str:
        """A fresh id that sorts by creation time (24 hex characters)."""
        ...


@dataclass(frozen=True)
class Written:
    """A chat change that applied: the chat as stored after it, and the notifications it queued, to publish."""

    chat: Chat
    outbox: Outbox


@dataclass(frozen=True)
class Naming:
    """What the profile service found for a contact (`Contacts.resolve_many`)."""

    contact_id: str
    name: str
    photo_url: str | None


@dataclass(frozen=True)
class Resolved:
    """A contact named by its profile (`Contacts.resolve`). `renamed`: its chats may carry another name: the name
    changed now, or the profile had been resolved before (this is a repeat, which may come after a crash that left
    the chats unrenamed). A pending contact named as it was carries that name on every chat already: chats take
    their contact's name as they open, and only a profile (or an operator's edit, which profiles never override)
    changes it."""

    contact: Contact
    renamed: bool


@dataclass(frozen=True)
class Postponement:
    """A chat's completion timeout moved by a message (see `Chats.postpone`)."""

    chat_id: str
    active_at: float
    due_at: float | None
    last_message_at: datetime | None
    messages_in: int = 1  # the customer's messages it counts (reports), when `last_message_at` is given


@dataclass(frozen=True)
class Removal:
    """What `Chats.remove_published` takes, for `remove_published_many`."""

    outbox: Outbox
    keys: Sequence[str]
    legacy: bool
    whole: bool


class Chats(Protocol):
    async def get(self, chat_id: str) -> Chat | None: ...

    async def get_many(self, chat_ids: Sequence[str]) -> list[Chat]:
        """The chats stored under these ids (in any order; those not stored left out), in one read by `_id`."""
        ...

    async def of_contact(self, contact_id: str) -> list[Chat]:
        """Every chat of the contact (open and closed), newest first."""
        ...

    async def move_contact(self, chat: Chat, contact_id: str, contact_name: str) -> None:
        """The chat is now of another contact (a merge); an open one keeps one open chat per contact and channel."""
        ...

    async def open(self, chat: Chat) -> Chat:
        """The open chat with `chat.open_key`: the one stored, or `chat` stored now (a lost race reads the winner's)."""
        ...

    async def open_many(self, chats: Sequence[Chat]) -> list[Chat]:
        """`open` for each, in one write (each with its own `open_key`): the chat stored for each."""
        ...

    async def find_open(self, open_key: str) -> Chat | None:
        """The open chat with this `open_key`, if there is one (one read by one indexed field)."""
        ...

    async def postpone_many(self, postponements: Sequence[Postponement]) -> None:
        """`postpone` for each, in one write (one chat each)."""
        ...

    async def change(self, update: ChatUpdate) -> Written | None:
        """Atomically: if the chat is still at `update.before`'s version and meets `update.guard`, write the update's
        fields, increment the version and add its notes to the chat's outbox (never writing back notes read
        earlier). None if another change came first: read again and decide again."""
        ...

    async def waiting(self, queue_id: str, limit: int) -> list[Chat]:
        """The queue's waiting line (new chats offered to nobody), in arrival order."""
        ...

    async def offered_in(self, queue_id: str, limit: int) -> list[Chat]:
        """The queue's new chats that are offered (not waiting), in arrival order."""
        ...

    async def offered_to_any(self, operator_ids: Sequence[str], limit: int) -> list[Chat]:
        """New chats offered to any of `operator_ids`, in arrival order."""
        ...

    async def held_by(self, operator_ids: Sequence[str], queue_ids: Sequence[str], limit: int) -> list[Chat]:
        """Chats assigned to any of `operator_ids` in any of `queue_ids`, in arrival order."""
        ...

    async def offers_expired(self, now: float, limit: int) -> list[Chat]:
        """Chats whose offer deadline has passed, earliest first."""
        ...

    async def drop_offer_deadline(self, chat: Chat) -> None:
        """Remove a deadline left on a chat that is no longer new (if its status is still what was read)."""
        ...

    async def queues_waiting(self) -> list[str]:
        """The queues whose waiting line is not empty."""
        ...

    async def due(self, now: float, limit: int) -> list[Chat]:
        """Open chats past their due time, earliest first."""
        ...

    async def postpone(
        self, chat_id: str, active_at: float, due_at: float | None, last_message_at: datetime | None
    ) -> None:
        """A message went in or out of an open chat: move `active_at` and `due_at` later (never earlier) and set
        `last_message_at`, in one write."""
        ...

    async def reschedule(self, chat: Chat, due_at: float | None) -> None:
        """Set (or, None, remove) the due time, if it is still the one read."""
        ...

    async def stale_outboxes(self, before: float, limit: int) -> list[Outbox]:
        """Outboxes with notes queued before `before` and still not published."""
        ...

    async def remove_published(self, outbox: Outbox, keys: Sequence[str], *, legacy: bool, whole: bool) -> None:
        """Remove the notes under `keys` (and, `legacy`, the 0.1 list) from the chat's outbox. `whole`: that is
        everything the chat held at `outbox.version`, so if no change came since, its sweep deadline ends with them
        in the same write; otherwise it ends once the outbox is empty and no change came since."""
        ...

    async def remove_published_many(self, removals: Sequence["Removal"]) -> None:
        """`remove_published` for each (each of its own chat), in as few writes as may be."""
        ...

    async def rename_contact(self, contact_id: str, name: str) -> None: ...

    async def welcomed(self, chat_id: str) -> None:
        """The chat's greeting or out-of-hours answer is stored: remove `welcome`."""
        ...

    async def replied(self, chat_id: str, at: datetime, seconds: float | None) -> None:
        """An operator replied: count it (`messages_out`) and, if it is the first, set `first_response_at` and
        `first_response_seconds` (`seconds` since the chat was created)."""
        ...

    async def asked(self, chat_id: str) -> None:
        """The chat's CSAT question is stored: remove `csat_ask_at`."""
        ...

    async def questions_due(self, before: float, limit: int) -> list[Chat]:
        """Closed chats whose CSAT question was to be stored before `before` and is not (a crash came between)."""
        ...

    async def awaiting_rating(self, rating_key: str) -> Chat | None:
        """The closed chat whose CSAT question waits for this contact's rating ("<channel>:<contact>")."""
        ...

    async def rate(self, chat_id: str, rating: Mapping[str, Any]) -> bool:
        """Atomically record the chat's rating and stop waiting for one; False if it had one already."""
        ...

    async def open_chats(self) -> list[Chat]: ...

    async def page(
        self, visible: Visibility, status: str | None, before: str | None, limit: int, label: str | None = None
    ) -> list[Chat]:
        """Chats `visible` selects, open ones or those of `status` (and, with `label`, carrying it), newest first,
        ids below `before`."""
        ...

    async def set_labels(self, chat_id: str, labels: Sequence[str]) -> Chat | None:
        """Replace the chat's labels; the chat after it (None: no such chat)."""
        ...

    async def drop_label(self, name: str) -> None:
        """Remove the label from every chat carrying it."""
        ...

    async def seen_by(self, operator_id: str) -> dict[str, str]:
        """Every chat (any status) the operator holds or held, or is offered now: chat id to contact id."""
        ...

    async def latest_of_contact(self, contact_id: str) -> Chat | None:
        """The contact's newest chat."""
        ...

    async def open_ids(self, visible: Visibility) -> list[str]: ...


class Reports(Protocol):
    """Figures over the stored chats (never their messages: chats keep counts and durations)."""

    async def summary(self, filters: ReportFilter) -> Summary: ...

    def chats(self, covered: Period) -> AsyncIterator[Chat]:
        """The chats created in the period, oldest first, as a stream."""
        ...


class Operators(Protocol):
    async def get(self, operator_id: str) -> Operator | None: ...

    async def by_token(self, token_hash: str) -> Operator | None: ...

    async def exists(self, operator_id: str) -> bool: ...

    async def many(self, operator_ids: Sequence[str]) -> list[Operator]: ...

    async def offline_ids(self) -> list[str]: ...

    async def set_status(self, operator_id: str, status: str) -> None: ...

    async def take_unit(self, operator_id: str, chat_id: str, *, load: int, online_only: bool, at: float) -> bool:
        """Atomically: if the operator's load is `load`, below `max_chats`, the chat holds none of their units (and,
        `online_only`, they are online), take one for the chat and stamp it (and `last_routed_at`) with `at`."""
        ...

    async def record_unit(self, operator_id: str, chat_id: str, at: float) -> bool:
        """Atomically record a unit the chat uses whatever the load (repairing a lost hold); False if it has one."""
        ...

    async def release_unit(self, operator_id: str, chat_id: str) -> bool:
        """Atomically give back the chat's unit; False if it held none (already released)."""
        ...

    async def holds(self, operator_id: str, chat_id: str) -> bool: ...

    async def holdings(self) -> list[Holdings]: ...

    async def all(self, limit: int) -> list[Operator]: ...

    async def add(self, operator: Operator) -> None: ...

    async def save(self, operator: Operator, fields: Sequence[str]) -> None:
        """Write `fields` of `operator` over the stored one."""
        ...

    async def delete(self, operator_id: str) -> None: ...


class Queues(Protocol):
    async def get(self, queue_id: str) -> Queue | None: ...

    async def all(self, limit: int) -> list[Queue]: ...

    async def of_operator(self, operator_id: str) -> list[Queue]: ...

    async def ids_with_any(self, operator_ids: Sequence[str]) -> list[str]: ...

    async def returning_ids(self) -> list[str]:
        """Queues whose chats go back to the waiting line when their operator goes offline."""
        ...

    async def add(self, queue: Queue) -> None: ...

    async def save(self, queue: Queue, fields: Sequence[str]) -> None: ...

    async def delete(self, queue_id: str) -> None: ...

    async def drop_operator(self, operator_id: str) -> None:
        """Remove the operator from every queue."""
        ...


class Channels(Protocol):
    async def get(self, channel_id: str) -> Channel | None: ...

    async def all(self, limit: int) -> list[Channel]: ...

    async def add(self, channel: Channel) -> bool:
        """False if the provider already has a channel with this source."""
        ...

    async def save(self, channel: Channel, fields: Sequence[str]) -> None: ...

    async def delete(self, channel_id: str) -> None: ...

    async def record_registration(
        self, channel_id: str, registration: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> None:
        """Store a registration's outcome on the channel, and the settings it generated."""
        ...


class RoutingSettings(Protocol):
    """Queues and channels as routing reads them for every message: kept a little while (each router reads
    them again within SETTINGS_TTL_SECONDS of a change), forgotten at once after a change made here."""

    async def queue(self, queue_id: str | None) -> Queue | None: ...

    async def channel(self, channel_id: str) -> Channel | None: ...

    def forget(self) -> None: ...


class Contacts(Protocol):
    async def get(self, contact_id: str) -> Contact | None: ...

    async def find_or_add(self, contact: Contact) -> Contact:
        """The contact of `contact`'s channel and sender: the one stored, or `contact` stored now."""
        ...

    async def add_many(self, contacts: Sequence[Contact]) -> list[Contact]:
        """`find_or_add` for each contact (each of its own sender), adding them in one write: the contact stored
        for each (`contact` itself when it was stored now, else the sender's, read as `find` reads it)."""
        ...

    async def find(self, sender_key: str) -> Contact | None:
        """The contact of a channel and sender (`sender_key`), if there is one (one read by one indexed field)."""
        ...

    async def resolve(self, contact_id: str, name: str, photo_url: str | None) -> Resolved | None:
        """The profile service named the contact: the contact after it; None when an operator's name for it stays
        (photo set alone) or there is no such contact."""
        ...

    async def resolve_many(self, profiles: Sequence[Naming]) -> list[Resolved | None]:
        """`resolve` for each (a contact at most once), in as few commands as may be: what each answers, in order."""
        ...

    async def edit(self, contact_id: str, name: str | None, attributes: Mapping[str, str] | None) -> Contact | None:
        """An operator's change (None: left as it is; a name given is kept over later profiles); the contact as
        changed, or None if there is none."""
        ...

    async def absorb(self, contact: Contact) -> None:
        """Store a merge's outcome on the contact kept: its identities, merged ids and attributes."""
        ...

    async def mark_merged(self, contact_id: str, into_id: str) -> None:
        """The contact is gone into `into_id`: its sender finds that one from now on."""
        ...


class Messages(Protocol):
    async def get(self, message_id: str) -> Message | None: ...

    async def incoming(self, dedupe_key: str) -> Message | None: ...

    async def add_incoming(self, message: Message) -> tuple[Message, bool]:
        """Store a customer's message once (by its dedupe key); a repeat answers the stored one and False."""
        ...

    async def add_incoming_many(self, messages: Sequence[Message]) -> list[bool]:
        """`add_incoming` for each, in one write: whether each was stored now (False: its dedupe key was stored
        already, before or earlier in `messages`). A duplicate never fails the others."""
        ...

    async def mark_routed(self, message_id: str) -> None: ...

    async def mark_routed_many(self, message_ids: Sequence[str]) -> None:
        """`mark_routed` for each, in one write."""
        ...

    async def add_reply(self, message: Message) -> bool:
        """Store an operator's reply; False if a message with its id is stored already."""
        ...

    async def add_note(self, note: Message) -> None:
        """Store an operators' note (direction internal): never in the reply outbox."""
        ...

    async def mark_published(self, message_id: str) -> None: ...

    async def fail(self, message_id: str, reason: str) -> None:
        """A reply that can never be published (its channel is gone)."""
        ...

    async def publish_due(self, before: float) -> list[Message]:
        """Replies not yet published whose publishing was due before `before`, oldest first: the reply outbox."""
        ...

    async def last_from_customer(self, chat_id: str) -> Message | None:
        """The chat's newest incoming message (by id), or None when the customer never wrote in it."""
        ...

    async def unread_counts(self, chat_ids: Sequence[str]) -> dict[str, int]: ...

    async def mark_read(self, chat_id: str) -> int: ...

    async def page(self, chat_id: str, before: str | None, limit: int) -> list[Message]:
        """The chat's messages with ids below `before`, newest first."""
        ...

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
        """Atomically move a reply found by its messenger id (or ours) from one of `from_statuses` to `to`; the
        message as it was, or None if none was in such a status."""
        ...

    async def reply_in_status(
        self, channel_id: str, status: str, *, provider_message_id: str | None = None, message_id: str | None = None
    ) -> Message | None: ...

    async def sent_until(
        self, channel_id: str, recipient: str | None, statuses: Sequence[str], watermark: datetime
    ) -> list[str]:
        """The replies to `recipient` in `statuses` that were sent by `watermark`."""
        ...

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
    ) -> None: ...

    async def with_file(self, file_id: str) -> Message | None: ...


class Labels(Protocol):
    async def add(self, label: Label) -> bool:
        """False if a label of that name exists (names are unique)."""
        ...

    async def all(self) -> list[Label]: ...

    async def delete(self, label_id: str) -> Label | None:
        """The label removed, None if there was none."""
        ...


class CannedResponses(Protocol):
    async def add(self, response: CannedResponse) -> None: ...

    async def get(self, response_id: str) -> CannedResponse | None: ...

    async def shared(self) -> list[CannedResponse]:
        """The admin's: global and every queue's."""
        ...

    async def usable(self, operator_id: str, queue_ids: Sequence[str]) -> list[CannedResponse]:
        """The global ones, those of `queue_ids` and the operator's own."""
        ...

    async def save(self, response: CannedResponse) -> None: ...

    async def delete(self, response_id: str) -> None: ...


class SearchIndex(Protocol):
    """Words of messages and contacts; each lookup is by one word (see domain/search.py)."""

    async def put(self, entry: SearchEntry) -> None:
        """Store (or replace) the entry with its id: repeating it stores it once."""
        ...

    async def put_many(self, entries: Sequence[SearchEntry]) -> None:
        """`put` for each (each its own id), in as few writes as may be; for entries mostly new (a batch's messages
        and new customers)."""
        ...

    async def put_again(self, entries: Sequence[SearchEntry]) -> None:
        """`put` for each (each its own id), for entries mostly stored already (resolved profiles): those stored as
        they are cost one read for them all."""
        ...

    async def with_word(self, word: str, before: str | None, limit: int) -> list[SearchEntry]:
        """Entries holding `word` with ids below `before`, newest (highest id) first (their texts left out)."""
        ...

    async def texts(self, entries: list[SearchEntry]) -> dict[str, str]:
        """The texts of these entries (by id): a message's text, a contact's name and attribute values."""
        ...


class IdempotencyKeys(Protocol):
    async def claim(self, claim: KeyClaim) -> KeyClaim | None:
        """Atomically store `claim` unless its id is taken: the claim stored under the id (`claim` itself when it was
        stored now), or None if the one that was there is gone by the time it is read."""
        ...

    async def forget(self, claim: KeyClaim) -> None:
        """Remove an expired claim (only that one: not a newer claim of the same key)."""
        ...


@dataclass(frozen=True)
class StoredNotification:
    """A notification as the live streams read it: its position (`id`), and the JSON the operator's queue got."""

    id: str
    operator_id: str
    event: str
    body: str


class NotificationLog(Protocol):
    """Notifications as stored for the live streams, in positions that sort by time."""

    async def record(self, notes: Sequence[ChatNotification]) -> None:
        """Store `notes` in one write; a note recorded before (an outbox retry) keeps its first record."""
        ...

    async def after(self, operator_id: str, position: str, limit: int) -> list[StoredNotification]:
        """The operator's notifications above `position`, oldest first."""
        ...

    async def recent(self, operator_ids: Sequence[str], position: str) -> list[StoredNotification]:
        """Everyone's of `operator_ids` above `position`, oldest first."""
        ...

    async def prune(self, position: str) -> int:
        """Delete notifications below `position`; answers how many."""
        ...

    def position_at(self, seconds: float) -> str:
        """The lowest position a notification stored at `seconds` (epoch) can have."""
        ...

    def time_of(self, position: str) -> float: ...


class StreamTickets(Protocol):
    async def issue(self, ticket_hash: str, operator_id: str, expires_at: float, now: float) -> None:
        """Store a ticket (and drop those expired by `now`)."""
        ...

    async def spend(self, ticket_hash: str) -> tuple[str, float] | None:
        """Remove the ticket; its operator and expiry, if it was there."""
        ...


class OperatorQueues(Protocol):
    """Each operator's queue on the broker, where their notifications go."""

    async def publish(self, note: ChatNotification) -> None:
        """Publish to the operator's queue; BrokerUnavailable if the broker did not confirm."""
        ...

    async def declare(self, operator_id: str) -> None: ...

    async def delete(self, operator_id: str) -> None: ...


class Events(Protocol):
    async def publish(self, event: Event) -> None:
        """Publish an event (a reply for the dispatcher, a profile or attachment request); BrokerUnavailable if the
        broker did not confirm."""
        ...


@dataclass(frozen=True)
class Registration:
    ok: bool
    detail: str
    settings_update: Mapping[str, Any] = field(default_factory=dict)


class Messengers(Protocol):
    """The providers, as the admin use cases need them."""

    def check_channel(self, provider: str, settings: Mapping[str, Any]) -> None:
        """Raise Invalid if `provider` is unknown or `settings` lack what it needs."""
        ...

    async def register(self, channel: Channel) -> Registration:
        """Connect the channel to its messenger (Invalid `unknown_provider` if its provider is unknown)."""
        ...

    def reply_window(
        self, channel: Channel, last_customer_message_at: datetime | None, now: datetime, kind: str
    ) -> ReplyWindow:
        """May a reply of `kind` (`text` or `template`) go to the customer of `channel` now, by the messenger's
        customer-service window that runs from `last_customer_message_at` (the messenger's time)?"""
        ...


class ParkingLots(Protocol):
    async def list(self, queue: str | None, limit: int) -> list[dict[str, Any]]: ...

    async def find(self, parked_id: str) -> dict[str, Any] | None: ...

    async def replay(self, queue: str | None, ids: set[str] | None, *, discard: bool) -> int: ...


class FileDownload(Protocol):
    @property
    def length(self) -> int: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


class Files(Protocol):
    async def open(self, file_id: str) -> FileDownload | None:
        """A stored attachment's bytes; None if there is no such file."""
        ...

    async def describe(self, file_id: str) -> Upload | None:
        """A stored file's name, type, size and uploader (None for an attachment a customer sent); None if there
        is no such file (or `file_id` is no file id at all)."""
        ...

    async def put(
        self, file_name: str, content_type: str | None, chunks: AsyncIterable[bytes], max_bytes: int, uploaded_by: str
    ) -> Upload:
        """Store an operator's upload chunk by chunk; past `max_bytes` nothing is kept and TooLarge is raised."""
        ...


class RouterInstances(Protocol):
    """Router processes saying they are alive, to share the input partitions."""

    async def beat(self, instance: str, now: float) -> None: ...

    async def live(self, since: float) -> list[str]: ...

    async def forget(self, before: float) -> None: ...

    async def leave(self, instance: str) -> None: ...


class ApiTokens(Protocol):
    """Named API tokens by the hash of their secret; read at every request (no cache), so a revoked one is refused
    by every router at once."""

    async def add(self, token: ApiToken) -> None: ...

    async def by_hash(self, token_hash: str) -> ApiToken | None: ...

    async def all(self, limit: int) -> list[ApiToken]: ...

    async def delete(self, token_id: str) -> bool:
        """False if there was no such token."""
        ...


class AuditLog(Protocol):
    async def add(self, entry: AuditEntry) -> None: ...

    async def page(self, before: str | None, limit: int) -> list[AuditEntry]:
        """Entries with ids below `before`, newest first."""
        ...


class WebhookSubscriptions(Protocol):
    """Outbound webhooks' subscriptions, as the dispatcher reads them (URL and secret at each attempt)."""

    async def add(self, subscription: Subscription) -> None: ...

    async def get(self, subscription_id: str) -> Subscription | None: ...

    async def all(self, limit: int) -> list[Subscription]: ...

    async def delete(self, subscription_id: str) -> bool:
        """False if there was no such subscription."""
        ...

    async def wanting(self, event: str) -> list[Subscription]:
        """The active subscriptions to `event`: read for every event, so kept a little while (each router reads
        them again within SUBSCRIPTIONS_TTL_SECONDS of a change made elsewhere; at once after one made here)."""
        ...


class WebhookDeliveries(Protocol):
    async def page(self, subscription_id: str, after: str | None, limit: int) -> list[DeliveryAttempt]:
        """The subscription's delivery attempts with ids above `after`, in the order they were made."""
        ...


class Destinations(Protocol):
    async def check(self, url: str) -> None:
        """Invalid (`invalid_url`) for a URL the dispatcher would refuse to call: not http(s), or (unless private
        addresses are allowed) a host with a loopback, private or reserved address, or one that does not resolve."""
        ...
