"""Operator capacity: units of `max_chats`, one per chat holding it (an assigned chat, or an offer that reserves
the operator), claimed and given back keyed by chat so that repeating either is harmless."""

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum


class Claim(Enum):
    TAKEN = "taken"  # a unit was taken now for this chat
    HELD = "held"  # the chat already holds one of this operator's units
    REFUSED = "refused"  # at capacity, offline (when online is required), unknown, or changed meanwhile


@dataclass(frozen=True)
class Holdings:
    """The chats holding units of one operator's capacity, and when each unit was taken (epoch seconds)."""

    operator_id: str
    holds: tuple[str, ...] = ()
    hold_at: Mapping[str, float] = field(default_factory=dict)

    def unused(self, users: Collection[str], claimed_before: float) -> list[str]:
        """Units no open chat in `users` uses, taken before `claimed_before` (a younger claim's chat write may
        still be on its way)."""
        return [c for c in self.holds if c not in users and float(self.hold_at.get(c, 0)) < claimed_before]

    def missing(self, users: Collection[str]) -> list[str]:
        """Open chats in `users` using a unit that is not recorded (a hold that was lost)."""
        return sorted(set(users) - set(self.holds))
