"""The router's things as the code handles them: chats, operators, queues, channels, contacts and messages.

Plain frozen values; the adapters read them from and write them to storage, field for field under the same
names (a value's `id` is a document's `_id`). Times the sweeps compare are epoch seconds; times shown to
people are datetimes.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ChatStatus = Literal["new", "assigned", "closed"]
OPEN_STATUSES: tuple[ChatStatus, ...] = ("new", "assigned")
OperatorStatus = Literal["online", "busy", "offline"]
OPERATOR_STATUSES: tuple[OperatorStatus, ...] = ("online", "busy", "offline")
Direction = Literal["incoming", "outgoing", "internal"]  # internal: an operators' note, never sent


@dataclass(frozen=True, slots=True)
class Chat:
    """One conversation of a contact on a channel, open until closed; a contact's next message after that opens
    a new one."""

    id: str
    channel_id: str
    queue_id: str | None
    contact_id: str
    contact_name: str | None = None
    status: str = "new"
    operator_id: str | None = None
    # Operators the chat is offered to now (`offered_ever`: at any time); `reserved_for` is the one whose
    # capacity unit the offer holds, `declined_by` those never to be offered it again.
    offered_to: tuple[str, ...] = ()
    offered_ever: tuple[str, ...] = ()
    reserved_for: str | None = None
    declined_by: tuple[str, ...] = ()
    # Offered to nobody because nobody could take it; `waiting_in` is its queue while it waits (the line).
    waiting: bool = False
    waiting_in: str | None = None
    # Incremented by every change of status, holder or offers: the compare-and-set token (None: a chat stored
    # before there was one).
    offer_version: int | None = 0
    offer_expires_at: float | None = None
    # Set while the chat is open: one open chat per contact and channel.
    open_key: str | None = None
    # The dedupe key of the customer message that opened it (its `chat.created` is announced with that message).
    opened_by: str | None = None
    created_at: datetime | None = None
    last_message_at: datetime | None = None
    # When the last message went in or out, and when the queue's completion timeout closes the chat.
    active_at: float | None = None
    due_at: float | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None
    # Set while notifications of the chat's changes wait in its outbox: when the sweep publishes them itself.
    outbox_at: float | None = None
    # Names of the admin's labels operators put on the chat (domain/labels.py).
    labels: tuple[str, ...] = ()
    # Opened outside its queue's business hours: not offered before this (epoch seconds), the waiting line's sweep
    # offers it then. `welcome`: the greeting or out-of-hours answer still to send ({"id", "text"}: the id it is
    # stored under, so a repeat stores it once).
    not_before: float | None = None
    welcome: Mapping[str, str] | None = None
    # Kept as messages go in and out and as it closes, so that reports read chats, never messages.
    messages_in: int = 0
    messages_out: int = 0
    first_response_at: datetime | None = None
    first_response_seconds: float | None = None
    resolution_seconds: float | None = None
    # `closed_at` in epoch seconds: what reports select closed chats by (a range on one indexed number).
    closed_ts: float | None = None
    # The CSAT question sent at closing: `csat_key` ("<channel>:<contact>") while a rating may still come, until
    # `csat_until` (epoch seconds); `csat_message_id` the question's id; the customer's answer as `rating`.
    csat_key: str | None = None
    csat_until: float | None = None
    csat_message_id: str | None = None
    # Set by the closing that asks, removed once the question is stored: what a crash in between left to the sweep.
    csat_ask_at: float | None = None
    rating: Mapping[str, Any] | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class Operator:
    """A person at the desk. `load` counts the units of `max_chats` in use; `holds` are the chats holding them
    (assigned chats and offers that reserve a unit) and `hold_at` when each was taken (epoch seconds)."""

    id: str
    name: str = ""
    role: str = "operator"
    status: str = "offline"
    max_chats: int | None = None
    load: int = 0
    holds: tuple[str, ...] = ()
    hold_at: Mapping[str, float] = field(default_factory=dict)
    last_routed_at: float | None = None
    token_hash: str | None = None
    created_at: datetime | None = None

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


@dataclass(frozen=True, slots=True)
class Queue:
    """Where a channel's chats wait and which rule offers them to which operators."""

    id: str
    name: str = ""
    routing_rule: str = ""
    operator_ids: tuple[str, ...] = ()
    completion_timeout_minutes: float | None = None
    offer_timeout_seconds: float | None = None
    # What happens to the chats an operator holds when they go offline: kept, or back to the queue.
    on_operator_offline: str = "keep"
    created_at: datetime | None = None
    # The actions its operators may be offered and take (domain/access.py QUEUE_ACTIONS); None: all of them.
    actions: tuple[str, ...] | None = None
    # Business hours as the admin gave them (domain/hours.py reads them; None: always open), what a new chat's
    # customer is told inside and outside them, and the CSAT question after a chat closes.
    business_hours: Mapping[str, Any] | None = None
    greeting_text: str | None = None
    out_of_hours_text: str | None = None
    csat: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    """A messenger account the customers write to, and the queue its chats go to. `settings` hold the provider's
    configuration, secrets included: never shown (see views)."""

    id: str
    name: str
    provider: str
    source: str = ""
    queue_id: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)
    is_active: bool = True
    registration: Mapping[str, Any] | None = None
    created_at: datetime | None = None


def default_contact_name(channel: Channel, sender: str) -> str:
    """The reference's name for a contact whose profile is not known (as `omni_providers.fallback_contact_name`,
    which the profiles service uses; a unit test keeps the two the same)."""
    return f"New contact {channel.name}-{sender}"


@dataclass(frozen=True, slots=True)
class Identity:
    """A contact's id on one channel's messenger."""

    channel_id: str
    external_id: str


@dataclass(frozen=True, slots=True)
class Contact:
    """A customer: first seen on one channel (`external_id` is their id on that messenger); merged with the contacts
    that are the same person on other channels, whose identities it then holds (`identities`, `merged_ids`). A
    contact merged into another (`merged_into`) is gone: its sender finds the other one."""

    id: str
    channel_id: str
    external_id: str
    name: str
    profile_status: str = "pending"
    photo_url: str | None = None
    created_at: datetime | None = None
    # A flat object of strings: email, phone, CRM id, ...
    attributes: Mapping[str, str] = field(default_factory=dict)
    identities: tuple[Identity, ...] = ()
    merged_ids: tuple[str, ...] = ()
    merged_into: str | None = None
    # An operator named the contact: the messenger's profile no longer renames it.
    name_edited: bool = False

    @property
    def all_identities(self) -> tuple[Identity, ...]:
        """Its own identity first, then those of the contacts merged into it."""
        own = Identity(self.channel_id, self.external_id)
        return (own, *(i for i in self.identities if i != own))

    @property
    def all_ids(self) -> tuple[str, ...]:
        """Its id and the ids of the contacts merged into it (their chats may not have moved yet)."""
        return (self.id, *(i for i in self.merged_ids if i != self.id))

    def external_id_on(self, channel_id: str) -> str:
        """Its id on `channel_id`'s messenger: where a reply in a chat of that channel goes."""
        return next((i.external_id for i in self.all_identities if i.channel_id == channel_id), self.external_id)


def sender_key(channel_id: str, sender: str) -> str:
    """A contact's lookup key: the channel and the sender's id there."""
    return f"{channel_id}:{sender}"


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file of a message. Incoming: the messenger's description, then the stored file (`file_id`) once the
    attachments service fetched it, addressed by `index`. Outgoing: what the operator attached (`url` or
    `provider_file_id`)."""

    file_name: str | None = None
    content_type: str | None = None
    size: int | None = None
    status: str = "pending"
    file_id: str | None = None
    failure_reason: str | None = None
    index: int | None = None
    url: str | None = None
    provider_file_id: str | None = None


@dataclass(frozen=True, slots=True)
class Upload:
    """A file an operator uploaded (`POST /api/files`), kept in GridFS until a reply sends it."""

    file_id: str
    file_name: str
    content_type: str | None
    size: int
    uploaded_by: str | None = None

    def as_attachment(self) -> "FileRef":
        """The file as a reply stores it: ours by `file_id`, already stored."""
        return FileRef(
            file_id=self.file_id,
            file_name=self.file_name,
            content_type=self.content_type,
            size=self.size,
            status="stored",
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A customer's message (incoming), an operator's reply (outgoing) or an operators' note (internal, type
    `note`, `operator_id` its author: never sent to the customer) in a chat."""

    id: str
    chat_id: str
    channel_id: str
    direction: str
    status: str
    type: str = "text"
    text: str | None = None
    attachments: tuple[FileRef, ...] = ()
    failure_reason: str | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None
    # Incoming: who sent it, and the messenger's id of it (the dedupe key), whether routed and read.
    sender: str | None = None
    provider_message_id: str | None = None
    dedupe_key: str | None = None
    location: Mapping[str, Any] | None = None
    read: bool = False
    routed: bool = False
    # Outgoing: who wrote it, to whom, and whether the dispatcher has it (`publish_due` until then).
    operator_id: str | None = None
    recipient: str | None = None
    published: bool = False
    publish_due: float | None = None
    # Outgoing, a template reply: `{"name", "language", "parameters": [...]}` (then no text and no files).
    template: Mapping[str, Any] | None = None


def dedupe_key(channel_id: str, provider_message_id: str) -> str:
    """An incoming message's identity: the same message delivered again has the same key."""
    return f"{channel_id}:{provider_message_id}"


# A receipt never moves a message backwards (a late "delivered" after "read" is ignored).
STATUS_ORDER = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


def statuses_before(status: str) -> list[str]:
    """The statuses a receipt saying `status` may move a reply from."""
    if status == "failed":  # the messenger gave up on a message it had accepted (WhatsApp's `failed` status)
        return ["queued", "sent"]
    return [s for s, rank in STATUS_ORDER.items() if rank < STATUS_ORDER.get(status, 0)]
