"""The whole broker layout in one place: exchanges, the queues each service consumes, their arguments and bindings.

Every service declares all of it at start (declaring is idempotent), so a publisher never
publishes before the queue that should hold its message exists. Consumer queues are durable
quorum queues with a delivery limit that dead-letters into the queue's parking lot: a message
that crashes or stalls its consumer every time ends parked instead of looping. The router's input
is split by chat into `ROUTER_PARTITIONS` queues, each with a single active consumer, so one
chat's messages are handled one at a time and in order while different chats run in parallel.
"""

import hashlib
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from aiormq.abc import FieldTable

from omni_contracts import Event, MessageReceived

EVENTS_EXCHANGE = "omni.events"
OPERATORS_EXCHANGE = "omni.operators"

ExchangeKind = Literal["topic", "direct", "fanout"]


class QueueArguments(TypedDict, total=False):
    """Queue arguments RabbitMQ understands; a misspelt key fails the type check."""

    x_message_ttl: int
    x_dead_letter_exchange: str
    x_dead_letter_routing_key: str
    x_dead_letter_strategy: Literal["at-most-once", "at-least-once"]
    x_queue_type: Literal["classic", "quorum"]
    x_delivery_limit: int
    x_overflow: Literal["drop-head", "reject-publish", "reject-publish-dlx"]
    x_single_active_consumer: bool


def amqp_arguments(arguments: QueueArguments) -> "FieldTable":
    table: FieldTable = {}
    for key, value in arguments.items():
        assert isinstance(value, str | int)  # bool is an int
        table["x-" + key[2:].replace("_", "-")] = value
    return table


@dataclass(frozen=True)
class ExchangeDef:
    name: str
    kind: ExchangeKind = "topic"


@dataclass(frozen=True)
class QueueDef:
    name: str
    bindings: tuple[tuple[str, str], ...] = ()
    arguments: QueueArguments = field(default_factory=lambda: QueueArguments())

    def wait_queue(self, delay_ms: int) -> "QueueDef":
        """A holding queue whose messages expire after `delay_ms` back into this queue."""
        return QueueDef(
            name=f"{self.name}.wait.{delay_ms}ms",
            arguments=QueueArguments(
                x_message_ttl=delay_ms,
                x_dead_letter_exchange="",
                x_dead_letter_routing_key=self.name,
            ),
        )

    @property
    def parking_lot(self) -> "QueueDef":
        return QueueDef(name=f"{self.name}.parked")

    @property
    def quorum(self) -> bool:
        return self.arguments.get("x_queue_type") == "quorum"


def consumer_queue(base: QueueDef, delivery_limit: int, *, single_active: bool = False) -> QueueDef:
    """`base` as a quorum queue: after `delivery_limit` returns (its consumer crashed, stalled or lost its link
    while holding it) the broker dead-letters a message into the parking lot, at least once."""
    arguments = QueueArguments(
        x_queue_type="quorum",
        x_delivery_limit=delivery_limit,
        x_dead_letter_exchange="",
        x_dead_letter_routing_key=base.parking_lot.name,
        # At-least-once dead-lettering holds the message until the parking lot confirmed it; it needs this overflow.
        x_dead_letter_strategy="at-least-once",
        x_overflow="reject-publish",
    )
    if single_active:
        arguments["x_single_active_consumer"] = True
    return QueueDef(base.name, base.bindings, arguments)


EXCHANGES = (ExchangeDef(EVENTS_EXCHANGE), ExchangeDef(OPERATORS_EXCHANGE))


def _on_events(*keys: str) -> tuple[tuple[str, str], ...]:
    return tuple((EVENTS_EXCHANGE, key) for key in keys)


# The consumer queues by name and bindings; `Topology` gives them their arguments.
ROUTER_INBOX = "router.received"  # the partitions' common name: `router.received.<n>`
ROUTER_UPDATES = QueueDef(
    "router.updates",
    _on_events("message.sent", "message.failed", "message.status", "profile.resolved", "attachment.stored"),
)
DISPATCHER_OUTGOING = QueueDef("dispatcher.outgoing", _on_events("message.outgoing"))
PROFILES_REQUESTED = QueueDef("profiles.requested", _on_events("profile.requested"))
ATTACHMENTS_REQUESTED = QueueDef("attachments.requested", _on_events("attachment.requested"))
# Outbound webhooks: one `webhook.delivery` per (subscription, event), delivered by the dispatcher.
DISPATCHER_WEBHOOKS = QueueDef("dispatcher.webhooks", _on_events("webhook.delivery"))

SHARED_QUEUES = (ROUTER_UPDATES, DISPATCHER_OUTGOING, PROFILES_REQUESTED, ATTACHMENTS_REQUESTED, DISPATCHER_WEBHOOKS)


def inbox_partition(number: int) -> QueueDef:
    """Partition `number` of the router's input, bound to `message.received.<number>`."""
    return QueueDef(f"{ROUTER_INBOX}.{number}", _on_events(f"message.received.{number}"))


def chat_key(channel_id: str, sender: str) -> str:
    """What one chat's messages have in common before the router knows the chat: its channel and sender."""
    return f"{channel_id}\n{sender}"


def partition_of(key: str, partitions: int) -> int:
    """A stable hash of the chat key (the same in every process and Python version) modulo the partitions."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


@dataclass(frozen=True)
class Topology:
    """The layout for one deployment: every service of it must be started with the same three values."""

    partitions: int = 8
    delivery_limit: int = 10
    retry_delays_ms: tuple[int, ...] = ()

    @property
    def inbox(self) -> tuple[QueueDef, ...]:
        return tuple(self.stale_partition(n) for n in range(self.partitions))

    def stale_partition(self, number: int) -> QueueDef:
        """Partition `number` as declared, also beyond `partitions` (one left by a larger ROUTER_PARTITIONS)."""
        return consumer_queue(inbox_partition(number), self.delivery_limit, single_active=True)

    @property
    def consumer_queues(self) -> tuple[QueueDef, ...]:
        return (*self.inbox, *(consumer_queue(q, self.delivery_limit) for q in SHARED_QUEUES))

    def consumer(self, base: QueueDef) -> QueueDef:
        """The declared form of one of the shared consumer queues (or of a partition)."""
        for queue in self.consumer_queues:
            if queue.name == base.name:
                return queue
        raise KeyError(f"{base.name} is not a consumer queue of this topology")

    def family(self, name: str) -> list[str]:
        """Consumer queue names `name` stands for: itself, or every partition for `router.received`."""
        names = [q.name for q in self.consumer_queues]
        if name == ROUTER_INBOX:
            return [q.name for q in self.inbox]
        return [name] if name in names else []

    def routing_key(self, event: Event) -> str:
        """An event's routing key on `omni.events`: its kind, with the partition for a received message."""
        if isinstance(event, MessageReceived):
            key = chat_key(event.message.channel_id, event.message.sender)
            return f"{event.kind}.{partition_of(key, self.partitions)}"
        kind = getattr(event, "kind", None)
        if not isinstance(kind, str):
            raise TypeError(f"{type(event).__name__} has no kind")
        return kind


def operator_queue(operator_id: str) -> QueueDef:
    """The durable notification queue of one operator (docs/api.md: `operator.<id>` on `omni.operators`).

    It stays a classic queue: consoles may declare it themselves as a plain durable queue, and a quorum
    queue of the same name would refuse that declaration.
    """
    key = operator_routing_key(operator_id)
    return QueueDef(key, ((OPERATORS_EXCHANGE, key),))


def operator_routing_key(operator_id: str) -> str:
    return f"operator.{operator_id}"
