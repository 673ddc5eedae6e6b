"""Operator notifications: one message per operator on `omni.operators`, routed to `operator.<id>`."""

from typing import Any

from omni_contracts import ChatNotification
from omni_contracts.events import NotificationKind
from omni_runtime.broker import Broker
from omni_runtime.topology import OPERATORS_EXCHANGE, operator_routing_key


class Notifier:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def send(
        self,
        kind: NotificationKind,
        chat_id: str,
        operator_ids: list[str],
        data: dict[str, Any] | None = None,
    ) -> None:
        for operator_id in operator_ids:
            note = ChatNotification(event=kind, chat_id=chat_id, operator_id=operator_id, data=data or {})
            await self._broker.publish(
                OPERATORS_EXCHANGE,
                operator_routing_key(operator_id),
                note.model_dump_json().encode(),
                message_id=note.event_id,
            )
