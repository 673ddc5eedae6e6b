"""Operator capacity over the operators' storage: claims checked and taken atomically, so routers running side
by side can never overfill an operator, and a repair for units a crash left unused or unrecorded."""

import logging

from omni_router.domain.capacity import Claim
from omni_router.domain.changes import uses_unit
from omni_router.service_layer.ports import Chats, Clock, Operators

log = logging.getLogger(__name__)

# Concurrent claims on one operator make all but one fail; each failure means another claim won.
CLAIM_ATTEMPTS = 20


class Capacity:
    def __init__(self, operators: Operators, chats: Chats, clock: Clock) -> None:
        self._operators = operators
        self._chats = chats
        self._clock = clock

    async def claim(
        self, operator_id: str, chat_id: str, *, expected_load: int | None = None, online_only: bool = True
    ) -> Claim:
        """Take one unit for `chat_id` if the operator is under capacity.

        With `expected_load` (what a routing decision was based on) the claim also fails when the operator's load
        moved meanwhile, so "fewest active chats" holds under concurrency; without it the claim retries against
        fresh reads.
        """
        for _ in range(CLAIM_ATTEMPTS):
            load = expected_load
            if load is None:
                operator = await self._operators.get(operator_id)
                if operator is None:
                    return Claim.REFUSED
                if chat_id in operator.holds:
                    return Claim.HELD
                load = operator.load
            at = self._clock.time()
            if await self._operators.take_unit(operator_id, chat_id, load=load, online_only=online_only, at=at):
                return Claim.TAKEN
            if expected_load is not None:
                return Claim.HELD if await self._operators.holds(operator_id, chat_id) else Claim.REFUSED
        return Claim.REFUSED

    async def release(self, operator_id: str | None, chat_id: str) -> bool:
        """Give back the chat's unit; False if it held none (already released)."""
        if not operator_id:
            return False
        return await self._operators.release_unit(operator_id, chat_id)

    async def repair(self, grace_seconds: float) -> list[str]:
        """Make every operator's holds match the chats: free units no open chat uses (claimed more than
        `grace_seconds` ago, so a claim whose chat write is still on its way is left alone) and record units open
        chats use without a hold. Answers the operators who got capacity back."""
        freed: list[str] = []
        cutoff = self._clock.time() - grace_seconds
        holdings = await self._operators.holdings()
        using: dict[str, set[str]] = {}
        for chat in await self._chats.open_chats():  # read once for all operators
            for holder in (chat.operator_id, chat.reserved_for):
                if holder:
                    using.setdefault(holder, set()).add(chat.id)
        for held in holdings:
            op, users = held.operator_id, using.get(held.operator_id, set())
            for chat_id in held.unused(users, claimed_before=cutoff):
                if await self._still_unused(op, chat_id) and await self.release(op, chat_id):
                    log.warning("freed a capacity unit no chat used", extra={"operator_id": op, "chat_id": chat_id})
                    freed.append(op)
            for chat_id in held.missing(users):
                if await self._operators.record_unit(op, chat_id, self._clock.time()):
                    log.warning("recorded a capacity unit a chat used", extra={"operator_id": op, "chat_id": chat_id})
        return freed

    async def _still_unused(self, operator_id: str, chat_id: str) -> bool:
        return not uses_unit(await self._chats.get(chat_id), operator_id)
