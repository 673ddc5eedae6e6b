"""A chat's place in its queue's waiting line follows every change: in it while new and offered to nobody."""

from omni_router.store import waiting_line

NEW = {"_id": "c", "status": "new", "queue_id": "q", "waiting": False}


def test_a_chat_nobody_can_take_joins_its_queues_line() -> None:
    assert waiting_line(NEW, {"waiting": True}, ()) == {"$set": {"waiting_in": "q"}}


def test_a_waiting_chat_moved_to_another_queue_waits_in_that_ones_line() -> None:
    waiting = {**NEW, "waiting": True, "waiting_in": "q"}
    assert waiting_line(waiting, {"queue_id": "other", "status": "new", "waiting": True}, ()) == {
        "$set": {"waiting_in": "other"}
    }


def test_an_offered_assigned_or_closed_chat_leaves_the_line() -> None:
    waiting = {**NEW, "waiting": True, "waiting_in": "q"}
    for changes in ({"offered_to": ["a"], "waiting": False}, {"status": "assigned"}, {"status": "closed"}):
        assert waiting_line(waiting, changes, ()) == {"$unset": {"waiting_in": ""}}, changes
    assert waiting_line(waiting, {}, ("waiting",)) == {"$unset": {"waiting_in": ""}}
