"""Routing rules and decisions: which operators a chat is offered to (the reference's GetOperatorIds contract).

A chat that already has an operator goes to that operator; otherwise the queue's rule picks from the queue's
operators. A rule is any callable taking the candidates and answering operator ids; one whose `holds_capacity`
attribute is true answers operators in order of preference, and the chat is offered to the first of them whose
capacity unit could be claimed; other rules offer to every operator they answer. Custom rules plug in through
the `omni.routing_rules` entry point group (omni_router.routing is their import path).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from omni_router.domain.model import Operator


@dataclass(frozen=True)
class Candidate:
    """A queue operator as a rule sees it."""

    id: str
    status: str
    role: str
    max_chats: int
    active_chats: int  # assigned chats plus offers holding a unit of `max_chats`
    idle_since: float = 0.0  # epoch seconds of the last chat offered or given to them; 0 if never


RoutingRule = Callable[[Sequence[Candidate]], list[str]]


def to_all(candidates: Sequence[Candidate]) -> list[str]:
    """Every online operator of the queue."""
    return [c.id for c in candidates if c.status == "online"]


class ToAvailable:
    """One online operator under capacity: fewest active chats, ties to the longest idle."""

    holds_capacity = True

    def __call__(self, candidates: Sequence[Candidate]) -> list[str]:
        free = [c for c in candidates if c.status == "online" and c.active_chats < c.max_chats]
        return [c.id for c in sorted(free, key=lambda c: (c.active_chats, c.idle_since, c.id))]


to_available = ToAvailable()

BUILTIN_RULES: dict[str, RoutingRule] = {"to_all": to_all, "to_available": to_available}


def holds_capacity(rule: RoutingRule) -> bool:
    """Whether the rule's offer goes to one operator and holds a unit of their capacity until answered."""
    return bool(getattr(rule, "holds_capacity", False))


def operator_ids_for(chat_operator_id: str | None, rule: RoutingRule, candidates: Sequence[Candidate]) -> list[str]:
    if chat_operator_id:
        return [chat_operator_id]
    return rule(candidates)


def candidate(operator: Operator, reserved_for: str | None = None) -> Candidate:
    """The operator as routing one chat sees them: the unit that chat holds already (it is `reserved_for` them)
    counts as free."""
    seen = Candidate(
        id=operator.id,
        status=operator.status,
        role=operator.role,
        max_chats=int(operator.max_chats or 0),
        active_chats=operator.load,
        idle_since=float(operator.last_routed_at or 0),
    )
    if operator.id != reserved_for:
        return seen
    return replace(seen, active_chats=max(seen.active_chats - 1, 0))


class Outcome(Enum):
    OFFERED = "offered"
    NOBODY = "nobody"  # the rule picks nobody now: the chat waits, and so do the chats behind it
    SKIPPED = "skipped"  # this chat only: everyone picked declined it, or it changed meanwhile


@dataclass(frozen=True)
class Choice:
    """A routing decision: whom to offer the chat to, and the operator whose capacity unit the offer holds."""

    outcome: Outcome
    offer: tuple[str, ...]
    reserve: str | None = None
    claimed: bool = False  # the unit was claimed for this decision (and is given back if it is not written)

    @classmethod
    def of(
        cls, picked: Sequence[str], offer: Sequence[str], reserve: str | None = None, claimed: bool = False
    ) -> "Choice":
        outcome = Outcome.OFFERED if offer else Outcome.SKIPPED if picked else Outcome.NOBODY
        return cls(outcome, tuple(offer), reserve, claimed)


@dataclass(frozen=True)
class Pick:
    """What a rule picked from the candidates, and which of those the chat may go to (not declined by them)."""

    picked: tuple[str, ...]
    allowed: tuple[str, ...]
    loads: dict[str, int]  # each candidate's active chats as the rule saw them

    def preference(self, later: Sequence[str] = ()) -> list[str]:
        """The allowed operators in the rule's order, those in `later` last (tried again only if nobody else can)."""
        return [op for op in self.allowed if op not in later] + [op for op in self.allowed if op in later]

    def to_everyone(self) -> Choice:
        return Choice.of(self.picked, self.allowed)

    def to_nobody(self) -> Choice:
        return Choice.of(self.picked, [])

    def to(self, operator_id: str, *, claimed: bool) -> Choice:
        return Choice.of(self.picked, [operator_id], reserve=operator_id, claimed=claimed)


def pick(rule: RoutingRule, candidates: Sequence[Candidate], declined: Sequence[str]) -> Pick:
    picked = rule(candidates)
    return Pick(
        tuple(picked), tuple(op for op in picked if op not in declined), {c.id: c.active_chats for c in candidates}
    )
