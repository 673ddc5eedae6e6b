"""A chat's place in its queue's waiting line follows every change: in it while new and offered to nobody."""

from omni_router.domain.changes import OPEN, update
from omni_router.domain.model import Chat

NEW = Chat(id="c", channel_id="ch", queue_id="q", contact_id="k", status="new", waiting=False)


def test_a_chat_nobody_can_take_joins_its_queues_line() -> None:
    changed = update(NEW, OPEN, waiting=True)
    assert changed.after.waiting_in == "q" and "waiting_in" in changed.fields


def test_a_waiting_chat_moved_to_another_queue_waits_in_that_ones_line() -> None:
    waiting = update(NEW, OPEN, waiting=True).after
    moved = update(waiting, OPEN, queue_id="other", status="new", waiting=True)
    assert moved.after.waiting_in == "other" and "waiting_in" in moved.fields


def test_an_offered_assigned_or_closed_chat_leaves_the_line() -> None:
    waiting = update(NEW, OPEN, waiting=True).after
    assert waiting.waiting_in == "q"
    for changes in (
        {"offered_to": ("a",), "waiting": False},
        {"status": "assigned"},
        {"status": "closed"},
        {"waiting": False},
    ):
        changed = update(waiting, OPEN, **changes)
        assert changed.after.waiting_in is None and "waiting_in" in changed.fields, changes
