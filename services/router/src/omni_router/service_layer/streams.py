"""Operators' live streams (`GET /api/events`): replayed from the notification log after a position, then fed by
one poller per router; the single-use tickets browsers open them with; the log's retention.

Notices records each notification in the log before publishing it, so what a stream shows is what the operator's
queue gets. Positions sort by time; a stream's position is the greatest one it has delivered, which is what a
client sends back as `Last-Event-ID`.
"""

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from omni_router.domain.access import token_hash
from omni_router.domain.errors import Unauthorized
from omni_router.domain.model import Operator
from omni_router.service_layer.ports import Clock, NotificationLog, Operators, StoredNotification, StreamTickets

log = logging.getLogger(__name__)

# Notifications are stored a little after their position is made, so two writers can commit out of order: every
# read of "what is new" looks this far back and skips what it already handed out. It is also the clock difference
# between router hosts that streams tolerate.
LATE_SECONDS = 2.0
BATCH = 500
# How often notifications past NOTIFICATION_RETENTION_HOURS are deleted.
PRUNE_EVERY_SECONDS = 600.0
# A stream that falls this far behind stops being fed and catches up from the log instead.
BACKLOG = 1_000
# A ticket opens one stream within this time; the console asks for one right before it connects.
TICKET_SECONDS = 60.0


async def stored_after(
    notification_log: NotificationLog, operator_id: str, after: str
) -> AsyncIterator[StoredNotification]:
    """The operator's notifications above position `after`, oldest first, read in batches."""
    while True:
        batch = await notification_log.after(operator_id, after, BATCH)
        for note in batch:
            yield note
        if len(batch) < BATCH:
            return
        after = batch[-1].id


async def prune(notification_log: NotificationLog, clock: Clock, retention_hours: float) -> int:
    """Delete notifications older than the retention; answers how many."""
    deleted = await notification_log.prune(notification_log.position_at(clock.time() - retention_hours * 3600))
    if deleted:
        log.info("pruned old notifications", extra={"count": deleted})
    return deleted


@dataclass(eq=False)
class Subscription:
    """One stream's feed from the hub; `behind` is set when the hub dropped notifications for it."""

    operator_id: str
    queue: asyncio.Queue[StoredNotification] = field(default_factory=lambda: asyncio.Queue(BACKLOG))
    behind: bool = False


class Hub:
    """One poller per router: reads new notifications every `interval` seconds while any stream is open, and hands
    each to the streams of its operator. Streams do their own replay; this is the live part."""

    def __init__(self, notification_log: NotificationLog, clock: Clock, interval: float = 0.2) -> None:
        self.log = notification_log
        self._clock = clock
        self._interval = interval
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._wanted = asyncio.Event()
        # Positions handed out within the last LATE_SECONDS (and a little more), in order.
        self._seen: dict[str, None] = {}

    @asynccontextmanager
    async def subscribe(self, operator_id: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(operator_id)
        self._subscriptions.setdefault(operator_id, set()).add(subscription)
        self._wanted.set()
        try:
            yield subscription
        finally:
            mine = self._subscriptions.get(operator_id, set())
            mine.discard(subscription)
            if not mine:
                self._subscriptions.pop(operator_id, None)
            if not self._subscriptions:
                self._wanted.clear()

    async def run(self) -> None:
        """Poll until cancelled; a failed read is logged and the next one tries again."""
        while True:
            await self._wanted.wait()
            try:
                await self.poll()
            except Exception:
                log.exception("reading new notifications failed; the next poll retries")
            await asyncio.sleep(self._interval)

    async def poll(self) -> None:
        now = self._clock.time()
        window = self.log.position_at(now - LATE_SECONDS)
        for note in await self.log.recent(list(self._subscriptions), window):
            if note.id not in self._seen:
                self._seen[note.id] = None
                self._hand_out(note)
        forget = self.log.position_at(now - 2 * LATE_SECONDS)
        for seen in [s for s in self._seen if s < forget]:
            del self._seen[seen]

    def _hand_out(self, note: StoredNotification) -> None:
        for subscription in self._subscriptions.get(note.operator_id, ()):
            try:
                subscription.queue.put_nowait(note)
            except asyncio.QueueFull:
                subscription.behind = True


class Position:
    """What one stream has delivered: everything above `start` it sent, and its greatest position.

    A notification committed late (below the greatest position already sent) is still delivered, but the event
    keeps the greatest position as its SSE id, so a reconnect never replays what came before it.
    """

    def __init__(self, start: str, notification_log: NotificationLog) -> None:
        self.start = start
        self.last = start
        self._log = notification_log
        self._sent: dict[str, None] = {}

    def take(self, note: StoredNotification) -> bool:
        """Whether `note` is still to be sent; if so it counts as sent from now on."""
        if note.id <= self.start or note.id in self._sent:
            return False
        self._sent[note.id] = None
        self.last = max(self.last, note.id)
        if len(self._sent) > 2 * BACKLOG:
            forget = self._log.position_at(self._log.time_of(self.last) - 2 * LATE_SECONDS)
            self._sent = {s: None for s in self._sent if s >= forget}
        return True

    def catch_up_from(self) -> str:
        """Where a stream that fell behind re-reads from: a little before its position, late commits included."""
        return max(self.start, self._log.position_at(self._log.time_of(self.last) - LATE_SECONDS))


class Tickets:
    """Single-use, short-lived tickets that open one operator's stream (browsers cannot send the token in a header,
    and a token in a URL ends up in logs); only their hashes are stored."""

    def __init__(self, tickets: StreamTickets, operators: Operators, clock: Clock) -> None:
        self._tickets = tickets
        self._operators = operators
        self._clock = clock

    async def issue(self, operator: Operator) -> tuple[str, float]:
        """A new ticket for the operator's stream and when it expires (epoch seconds)."""
        now = self._clock.time()
        ticket = secrets.token_urlsafe(32)
        expires_at = now + TICKET_SECONDS
        await self._tickets.issue(token_hash(ticket), operator.id, expires_at, now)
        return ticket, expires_at

    async def holder(self, ticket: str) -> Operator:
        """The operator a ticket was issued to; the ticket is spent whether or not it was still valid."""
        spent = await self._tickets.spend(token_hash(ticket))
        if spent is None or spent[1] < self._clock.time():
            raise Unauthorized("unauthorized", "unknown, used or expired ticket; get a new one")
        operator = await self._operators.get(spent[0])
        if operator is None:
            raise Unauthorized("unauthorized", "the ticket's operator no longer exists")
        return operator
