"""What the router publishes on RabbitMQ: operator notifications to each operator's queue (`operator.<id>` on
`omni.operators`), and events on `omni.events` (replies for the dispatcher, profile and attachment requests).
Every publish waits for the broker's confirm; an unconfirmed one raises BrokerUnavailable."""

from omni_contracts import ChatNotification
from omni_contracts.events import Event
from omni_runtime.broker import Broker
from omni_runtime.topology import OPERATORS_EXCHANGE, operator_queue, operator_routing_key


class BrokerOperatorQueues:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def publish(self, note: ChatNotification) -> None:
        await self._broker.publish(
            OPERATORS_EXCHANGE,
            operator_routing_key(note.operator_id),
            note.model_dump_json().encode(),
            message_id=note.event_id,
        )

    async def declare(self, operator_id: str) -> None:
        await self._broker.declare_queue(operator_queue(operator_id))

    async def delete(self, operator_id: str) -> None:
        await self._broker.delete_queue(operator_queue(operator_id).name)


class BrokerEvents:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def publish(self, event: Event) -> None:
        await self._broker.publish_event(event)
