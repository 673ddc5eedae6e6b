"""The consumers' parking lots on RabbitMQ, as the admin API shows and replays them."""

from typing import Any

from omni_runtime.broker import Broker
from omni_runtime.parking import find_parked, list_parked, replay_parked


class BrokerParkingLots:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def list(self, queue: str | None, limit: int) -> list[dict[str, Any]]:
        return [parked.view() for parked in await list_parked(self._broker, queue, limit)]

    async def find(self, parked_id: str) -> dict[str, Any] | None:
        found = await find_parked(self._broker, parked_id)
        return found.detail() if found is not None else None

    async def replay(self, queue: str | None, ids: set[str] | None, *, discard: bool) -> int:
        return await replay_parked(self._broker, queue, ids, discard=discard)
