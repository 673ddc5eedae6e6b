"""MongoDB through PyMongo's async API, and every index the services rely on, created at start."""

from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure
from pymongo.uri_parser import parse_uri

Document = dict[str, Any]
Database = AsyncDatabase[Document]

# How long an operator's Idempotency-Key of a reply is kept from its first use (router/idempotency.py).
IDEMPOTENCY_KEY_SECONDS = 24 * 3600

# Unique indexes are what make repeated deliveries harmless: a second insert of the same key fails.
INDEXES: dict[str, list[IndexModel]] = {
    "channels": [IndexModel([("provider", ASCENDING), ("source", ASCENDING)], unique=True)],
    "operators": [
        IndexModel([("token_hash", ASCENDING)], unique=True),
        IndexModel([("status", ASCENDING)]),
    ],
    # Looked up by one field: nx-27017 does not use compound indexes for lookups (a lookup by both fields read
    # every contact of the channel); the compound one still refuses a second contact of a sender.
    "contacts": [
        IndexModel([("sender_key", ASCENDING)], unique=True, sparse=True),
        IndexModel([("channel_id", ASCENDING), ("external_id", ASCENDING)], unique=True),
    ],
    "chats": [
        # Set while the chat is open and unset on close: one open chat per contact and channel.
        IndexModel([("open_key", ASCENDING)], unique=True, sparse=True),
        IndexModel([("offered_to", ASCENDING), ("status", ASCENDING)]),
        IndexModel([("operator_id", ASCENDING), ("status", ASCENDING)]),
        IndexModel([("queue_id", ASCENDING), ("status", ASCENDING)]),
        IndexModel([("status", ASCENDING)]),  # open chats among all the closed ones (the supervisors' overview)
        # The waiting line: the queue's id while the chat waits (new, offered to nobody), unset otherwise.
        IndexModel([("waiting_in", ASCENDING)], sparse=True),
        IndexModel([("contact_id", ASCENDING)]),  # a resolved profile renames the contact's chats
        # Every chat an operator holds or held, whatever its status (the search's fence). No index on the arrays
        # `offered_to` or `labels` alone: nx-27017 would answer from it and find nothing (test_stand_in.py).
        IndexModel([("operator_id", ASCENDING)]),
        # The router's sweeps: offers past their timeout, chats past their completion timeout, and
        # notifications written with a state change but not yet published (epoch seconds, unset when done).
        IndexModel([("offer_expires_at", ASCENDING)], sparse=True),
        IndexModel([("due_at", ASCENDING)], sparse=True),
        IndexModel([("outbox_at", ASCENDING)], sparse=True),
        # Set on a closed chat while its CSAT rating may come ("<channel>:<contact>"): every customer message with no
        # open chat looks it up, so one sparse field.
        IndexModel([("csat_key", ASCENDING)], sparse=True),
        # From a closing that asks the CSAT question until the question is stored: what a crash left to the sweep.
        IndexModel([("csat_ask_at", ASCENDING)], sparse=True),
        # Reports: chats created, and closed, in a period (epoch seconds, a range on one field).
        IndexModel([("created_ts", ASCENDING)], sparse=True),
        IndexModel([("closed_ts", ASCENDING)], sparse=True),
    ],
    "messages": [
        # Incoming messages only: "<channel_id>:<provider message id>".
        IndexModel([("dedupe_key", ASCENDING)], unique=True, sparse=True),
        # Replies not yet published (epoch seconds; unset once published): the outbox sweep.
        IndexModel([("publish_due", ASCENDING)], sparse=True),
        # One field: nx-27017 uses no compound index, and a chat's page of messages read every message.
        IndexModel([("chat_id", ASCENDING)]),
        IndexModel([("status", ASCENDING)]),  # replies still queued: few among all the messages
        # A messenger's receipt names the reply by the provider's id: without this index MongoDB read every reply
        # in the receipt's earlier statuses (most of them, over time), nx-27017 every message.
        IndexModel([("provider_message_id", ASCENDING)], sparse=True),
        # A Messenger watermark names the customer, not the replies: its replies are found by `recipient` (set on
        # replies only). Without it nx-27017 read every message for each watermark, MongoDB every reply in its
        # statuses.
        IndexModel([("recipient", ASCENDING)], sparse=True),
    ],
    # Labels operators put on chats (unique names) and canned responses, read by one field at a time.
    "labels": [IndexModel([("name", ASCENDING)], unique=True)],
    "canned_responses": [
        IndexModel([("scope", ASCENDING)]),
        IndexModel([("queue_id", ASCENDING)], sparse=True),
        IndexModel([("operator_id", ASCENDING)], sparse=True),
    ],
    # The search's word index (router adapters/search_index.py): postings under "<word> <entry id>", read as one
    # range of `key` (and removed by it); nothing else is indexed, so a message costs one unordered insert.
    "search_words": [IndexModel([("key", ASCENDING)], unique=True)],
    # Single-use tickets for browsers' event streams (router); expired ones are deleted as new ones are issued.
    "stream_tickets": [IndexModel([("expires_at", ASCENDING)])],
    # Operators' Idempotency-Keys of replies, removed IDEMPOTENCY_KEY_SECONDS after their first use.
    "idempotency_keys": [IndexModel([("created_at", ASCENDING)], expireAfterSeconds=IDEMPOTENCY_KEY_SECONDS)],
    # Outbound webhooks (dispatcher/webhooks.py): subscriptions by id; every delivery attempt, listed per
    # subscription and found per (subscription, event) by `delivery_key`.
    "webhook_deliveries": [
        IndexModel([("subscription_id", ASCENDING)]),
        IndexModel([("delivery_key", ASCENDING)]),
    ],
    # Named API tokens of the admin API (router), found by their secret's hash at every request.
    "api_tokens": [IndexModel([("token_hash", ASCENDING)], unique=True)],
    "notifications": [
        # A note the outbox publishes again is stored once. Streams read one operator's notes in `_id` order:
        # (operator_id, _id) would serve that best, but nx-27017 refuses every insert under an index with `_id`.
        IndexModel([("event_id", ASCENDING)], unique=True),
        IndexModel([("operator_id", ASCENDING)]),
    ],
}


# Indexes earlier versions created that no query needs, by collection and key: dropped at start, since every write
# of a document updates each of its collection's indexes (on nx-27017 each one is a B-tree of its own, with no
# sparse ones). Messages: `(chat_id, seq)` (no message has a `seq`; `chat_id` has its own index) and
# `(status, published)` (the one query with both, an upgrade at start, is served by `status`).
RETIRED_INDEXES: dict[str, list[dict[str, int]]] = {
    "messages": [{"chat_id": 1, "seq": 1}, {"status": 1, "published": 1}],
}
INDEX_NOT_FOUND = 27


def open_database(
    url: str, listeners: Sequence[monitoring.CommandListener] = ()
) -> tuple[AsyncMongoClient[Document], Database]:
    """The client and the URL's database (`omnichannel` when it names none); `listeners`: PyMongo event listeners
    (the command counter of `/metrics`)."""
    database = parse_uri(url).get("database") or "omnichannel"
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5_000, event_listeners=list(listeners)
    )
    return client, client[database]


class CommandCounter(monitoring.CommandListener):
    """Counts every database command the client sends, by command name and collection
    (`omni_database_commands_total{command,collection}`; the collection is empty for a command of none)."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        named = event.command.get(event.command_name)
        if event.command_name == "getMore":
            named = event.command.get("collection")
        self.counter.labels(event.command_name, named if isinstance(named, str) else "").inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def ensure_indexes(db: Database) -> None:
    for collection, indexes in INDEXES.items():
        await db[collection].create_indexes(indexes)
    await drop_retired_indexes(db)


async def drop_retired_indexes(db: Database) -> list[str]:
    """Drops the RETIRED_INDEXES still there, found by key and dropped by the name the server lists (nx-27017 names
    its indexes its own way); another service starting at the same time may drop one first. Answers the names."""
    dropped = []
    for collection, keys in RETIRED_INDEXES.items():
        listed = [index async for index in await db[collection].list_indexes()]
        for index in listed:
            if {str(k): int(v) for k, v in dict(index["key"]).items()} in keys:
                try:
                    await db[collection].drop_index(index["name"])
                except OperationFailure as exc:
                    if exc.code != INDEX_NOT_FOUND:
                        raise
                dropped.append(str(index["name"]))
    return dropped


async def ping(db: Database) -> bool:
    try:
        await db.command("ping")
    except Exception:
        return False
    return True
