"""Routing rules: which operators a chat is offered to (the reference's GetOperatorIds contract).

A chat that already has an operator goes to that operator; otherwise the queue's rule picks
from the queue's operators. Custom rules plug in through the `omni.routing_rules` entry point group.
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
    active_chats: int


RoutingRule = Callable[[Sequence[Candidate]], list[str]]


def to_all(candidates: Sequence[Candidate]) -> list[str]:
    """Every online operator of the queue."""
    return [c.id for c in candidates if c.status == "online"]


BUILTIN_RULES: dict[str, RoutingRule] = {"to_all": to_all}
ENTRY_POINT_GROUP = "omni.routing_rules"


def load_rules() -> dict[str, RoutingRule]:
    rules = dict(BUILTIN_RULES)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        rules[entry.name] = entry.load()
    return rules


def operator_ids_for(chat_operator_id: str | None, rule: RoutingRule, candidates: Sequence[Candidate]) -> list[str]:
    if chat_operator_id:
        return [chat_operator_id]
    return rule(candidates)
