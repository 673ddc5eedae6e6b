"""Routing rules: which operators a chat is offered to (the reference's GetOperatorIds contract).

A chat that already has an operator goes to that operator; otherwise the queue's rule picks
from the queue's operators. Custom rules plug in through the `omni.routing_rules` entry point group:
any callable taking the candidates and answering operator ids. A rule whose `holds_capacity`
attribute is true answers operators in order of preference, and the chat is offered to the first
of them whose capacity unit could be claimed; other rules offer to every operator they answer.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points


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
ENTRY_POINT_GROUP = "omni.routing_rules"


def load_rules() -> dict[str, RoutingRule]:
    rules = dict(BUILTIN_RULES)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        rules[entry.name] = entry.load()
    return rules


def holds_capacity(rule: RoutingRule) -> bool:
    """Whether the rule's offer goes to one operator and holds a unit of their capacity until answered."""
    return bool(getattr(rule, "holds_capacity", False))


def operator_ids_for(chat_operator_id: str | None, rule: RoutingRule, candidates: Sequence[Candidate]) -> list[str]:
    if chat_operator_id:
        return [chat_operator_id]
    return rule(candidates)
