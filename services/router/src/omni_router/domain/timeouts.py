"""How long things may wait: an offer for its accept, an open chat for its next message."""

from omni_router.domain.model import Queue


def completion_seconds(queue: Queue | None) -> float | None:
    """The queue's completion timeout: a chat with no message for this long is closed."""
    minutes = queue.completion_timeout_minutes if queue else None
    return float(minutes) * 60 if minutes else None


def due_time(queue: Queue | None, active_at: float) -> float | None:
    """When a chat of `queue` whose last message was at `active_at` falls due, if the queue closes idle chats."""
    seconds = completion_seconds(queue)
    return active_at + seconds if seconds else None


def offer_deadline(queue: Queue, default_seconds: float, now: float) -> float:
    """When an offer made now moves on if nobody accepted it (the queue's timeout, else the default)."""
    return now + float(queue.offer_timeout_seconds or default_seconds)
