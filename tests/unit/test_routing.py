"""Routing decisions: the reference's GetOperatorIds contract and the `to_all` rule."""

from omni_router.desk import allowed_actions, visibility
from omni_router.routing import Candidate, operator_ids_for, to_all


def _op(op_id: str, status: str) -> Candidate:
    return Candidate(id=op_id, status=status, role="operator", max_chats=5, active_chats=0)


def test_to_all_offers_every_online_operator() -> None:
    candidates = [_op("a", "online"), _op("b", "busy"), _op("c", "online"), _op("d", "offline")]
    assert to_all(candidates) == ["a", "c"]


def test_a_chat_with_an_operator_goes_to_that_operator() -> None:
    assert operator_ids_for("z", to_all, [_op("a", "online")]) == ["z"]
    assert operator_ids_for(None, to_all, [_op("a", "online")]) == ["a"]


def test_visibility_and_actions() -> None:
    operator = {"_id": "a", "role": "operator"}
    assert visibility({"_id": "s", "role": "supervisor"}) == {}
    assert visibility(operator) == {"$or": [{"operator_id": "a"}, {"offered_to": "a"}]}
    offered = {"status": "new", "offered_to": ["a", "b"], "operator_id": None}
    assert allowed_actions(offered, operator) == ["accept", "read", "send", "close"]
    held_by_b = {"status": "assigned", "offered_to": ["b"], "operator_id": "b"}
    assert allowed_actions(held_by_b, operator) == []
    assert allowed_actions({**held_by_b, "status": "closed"}, operator) == []
