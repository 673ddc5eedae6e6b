"""The whole broker layout in one place: exchanges, the queues each service consumes, and their bindings.

Every service declares all of it at start (declaring is idempotent), so a publisher never
publishes before the queue that should hold its message exists.
"""

from dataclasses import dataclass, field
from typing import Literal, TypedDict

from aiormq.abc import FieldTable

EVENTS_EXCHANGE = "omni.events"
OPERATORS_EXCHANGE = "omni.operators"

ExchangeKind = Literal["topic", "direct", "fanout"]


class QueueArguments(TypedDict, total=False):
    """Queue arguments RabbitMQ understands; a misspelt key fails the type check."""

    x_message_ttl: int
    x_dead_letter_exchange: str
    x_dead_letter_routing_key: str
    x_queue_type: Literal["classic", "quorum"]


def amqp_arguments(arguments: QueueArguments) -> "FieldTable":
    table: FieldTable = {}
    for key, value in arguments.items():
        assert isinstance(value, str | int)
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


EXCHANGES = (ExchangeDef(EVENTS_EXCHANGE), ExchangeDef(OPERATORS_EXCHANGE))


def _on_events(*keys: str) -> tuple[tuple[str, str], ...]:
    return tuple((EVENTS_EXCHANGE, key) for key in keys)


ROUTER_INBOX = QueueDef("router.received", _on_events("message.received"))
ROUTER_UPDATES = QueueDef(
    "router.updates",
    _on_events("message.sent", "message.failed", "message.status", "profile.resolved", "attachment.stored"),
)
DISPATCHER_OUTGOING = QueueDef("dispatcher.outgoing", _on_events("message.outgoing"))
PROFILES_REQUESTED = QueueDef("profiles.requested", _on_events("profile.requested"))
ATTACHMENTS_REQUESTED = QueueDef("attachments.requested", _on_events("attachment.requested"))

CONSUMER_QUEUES = (
    ROUTER_INBOX,
    ROUTER_UPDATES,
    DISPATCHER_OUTGOING,
    PROFILES_REQUESTED,
    ATTACHMENTS_REQUESTED,
)


def operator_queue(operator_id: str) -> QueueDef:
    """The durable notification queue of one operator (API.md: `operator.<id>` on `omni.operators`)."""
    key = operator_routing_key(operator_id)
    return QueueDef(key, ((OPERATORS_EXCHANGE, key),))


def operator_routing_key(operator_id: str) -> str:
    return f"operator.{operator_id}"
