"""Example custom routing rule, the reference's TestOperatorRoutingRule: new chats go to the queue's supervisor.

Installed, it is the routing rule `to_supervisor` (entry point group `omni.routing_rules`). As with
every rule, a chat that already has an operator stays with that operator; the rule only picks for
chats nobody holds. Supervisors who are not online are not offered chats: the chat waits until one is.
"""

from collections.abc import Sequence

from omni_router.routing import Candidate


def to_supervisor(candidates: Sequence[Candidate]) -> list[str]:
    """The queue's online supervisors."""
    return [c.id for c in candidates if c.role == "supervisor" and c.status == "online"]
