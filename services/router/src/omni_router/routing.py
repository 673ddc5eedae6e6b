"""Routing rules as plugins see them: the import path of the `omni.routing_rules` contract.

A rule is any callable taking the queue's operators as `Candidate`s and answering operator ids (see
omni_router.domain.routing); installed packages add rules through the `omni.routing_rules` entry point group.
"""

from importlib.metadata import entry_points

from omni_router.domain.routing import (
    BUILTIN_RULES,
    Candidate,
    RoutingRule,
    ToAvailable,
    holds_capacity,
    operator_ids_for,
    to_all,
    to_available,
)

__all__ = [
    "BUILTIN_RULES",
    "ENTRY_POINT_GROUP",
    "Candidate",
    "RoutingRule",
    "ToAvailable",
    "holds_capacity",
    "load_rules",
    "operator_ids_for",
    "to_all",
    "to_available",
]

ENTRY_POINT_GROUP = "omni.routing_rules"


def load_rules() -> dict[str, RoutingRule]:
    """The built-in rules and every installed one, by name (a queue's `routing_rule`)."""
    rules = dict(BUILTIN_RULES)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        rules[entry.name] = entry.load()
    return rules
