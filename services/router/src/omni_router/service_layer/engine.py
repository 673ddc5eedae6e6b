"""The routing engine: offering chats by their queue's rule, moving offers on, the waiting line, handing over and
closing.

Every change of a chat is a compare-and-set on its version with its notifications in the same write
(Chats.change), and every unit of operator capacity is claimed atomically before the chat write that uses it
(Capacity), so routers running side by side never overfill an operator and repeating any step is harmless.
Nothing here lives only in memory but the per-queue locks: offer deadlines, due times and the waiting line are
fields of the chats, which the sweeps act on.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from omni_router.domain import changes
from omni_router.domain.capacity import Claim
from omni_router.domain.changes import ChatUpdate, CsatAsk, Guard, OfferPlan, Reoffer
from omni_router.domain.csat import CSAT_WINDOW_SECONDS, csat_of
from omni_router.domain.errors import Conflict
from omni_router.domain.model import Chat, Message, Operator, Queue
from omni_router.domain.notifications import audience
from omni_router.domain.routing import Choice, Outcome, Pick, RoutingRule, candidate, holds_capacity, pick
from omni_router.domain.timeouts import due_time, offer_deadline
from omni_router.domain.views import message_view
from omni_router.service_layer.capacity import Capacity
from omni_router.service_layer.courtesy import Courtesy
from omni_router.service_layer.notices import Notices
from omni_router.service_layer.ports import Chats, Clock, Operators, Postponement, Queues, RoutingSettings, Written

log = logging.getLogger(__name__)

# Rounds of "read the candidates, claim the best" when concurrent claims keep winning first.
CLAIM_ROUNDS = 20
BATCH = 200


@dataclass(frozen=True)
class Routing:
    """A queue and the rule that offers its chats."""

    queue: Queue
    rule: RoutingRule


@dataclass
class Rerouted:
    """What offering chats again did: the outcome for the last one, the operators whose capacity unit came back,
    the changes written (their notifications to publish) and whether an offer told anyone."""

    outcome: Outcome = Outcome.SKIPPED
    freed: list[str] = field(default_factory=list)
    written: list[Written] = field(default_factory=list)
    told: bool = False

    def add(self, other: "Rerouted") -> Outcome:
        """Take in what routing one more chat did; answers its outcome (`told` stays this one's)."""
        self.freed += other.freed
        self.written += other.written
        return other.outcome


@dataclass(frozen=True)
class Arrived:
    """What routing a batch's chat nobody held or was offered did (`Engine.route_many`): the chat as it is now
    (None: a change by someone else came first, read it again) and whether the offer written now carried the
    message it was routed with (its operators need no `message.new` for it)."""

    chat: Chat | None
    carried: bool = False


class Team:
    """A queue's operators as routing reads them: read once, and kept as the claims made from them change them
    (a unit taken is counted here); read again after anything else may have changed them (a claim refused, a unit
    given back). A decision on a stale read only costs a refused claim: the claims stay atomic."""

    def __init__(self, operators: Operators, operator_ids: Sequence[str]) -> None:
        self._operators = operators
        self._ids = operator_ids
        self._known: list[Operator] | None = None

    async def read(self) -> list[Operator]:
        if self._known is None:
            self._known = await self._operators.many(self._ids)
        return self._known

    def took(self, operator_id: str, at: float) -> None:
        """A unit of the operator's was claimed from this read."""
        if self._known is not None:
            self._known = [
                replace(op, load=op.load + 1, last_routed_at=at) if op.id == operator_id else op for op in self._known
            ]

    def forget(self) -> None:
        self._known = None


def _arrived(chat: Chat, rerouted: Rerouted) -> Arrived:
    """The chat after offering it: as written, as it was (nothing to write), or unknown (another change came first)."""
    if rerouted.written:
        return Arrived(rerouted.written[-1].chat, rerouted.told)
    return Arrived(None if rerouted.outcome is Outcome.SKIPPED else chat)


def not_yet(chat: Chat, now: float) -> bool:
    """Whether the chat may not be offered yet (it opened outside its queue's business hours)."""
    return chat.not_before is not None and chat.not_before > now


class Engine:
    def __init__(
        self,
        *,
        chats: Chats,
        operators: Operators,
        queues: Queues,
        settings: RoutingSettings,
        capacity: Capacity,
        notices: Notices,
        courtesy: Courtesy,
        rules: Mapping[str, RoutingRule],
        offer_timeout_seconds: float,
        clock: Clock,
    ) -> None:
        self._chats = chats
        self._operators = operators
        self._queues = queues
        self.settings = settings
        self._capacity = capacity
        self._notices = notices
        self._courtesy = courtesy
        self._rules = rules
        self._offer_timeout = offer_timeout_seconds
        self._clock = clock
        # One routing decision per queue at a time in this process keeps claims from racing each other here; other
        # router processes are kept honest by the atomic claims and compare-and-set writes.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def _routing(self, queue_id: str | None) -> Routing | None:
        queue = await self.settings.queue(queue_id)
        return None if queue is None else self._routing_of(queue)

    def _routing_of(self, queue: Queue) -> Routing | None:
        rule = self._rules.get(queue.routing_rule)
        if rule is None:
            log.error("queue has an unknown routing rule", extra={"queue_id": queue.id})
            return None
        return Routing(queue, rule)

    # Routing ---------------------------------------------------------------------------------------------------

    async def route(self, chat: Chat, message: Message) -> None:
        """A customer message was stored: offer its chat if nobody holds or was offered it, else tell them."""
        if not chat.is_open:
            return
        data = {"message": message_view(message)}
        if chat.operator_id or chat.offered_to:
            await self._notices.tell("message.new", chat.id, audience(chat), data, key=message.id)
            return
        if await self.dispatch([chat.queue_id], newcomer=chat, data=data):
            return
        # Another message of this chat was offering it at the same moment, and its offer carried only that message:
        # whoever may see the chat now hears of this one too.
        current = await self._chats.get(chat.id)
        if current is not None and current.is_open and audience(current):
            await self._notices.tell("message.new", chat.id, audience(current), data, key=message.id)

    async def dispatch(
        self, queue_ids: Iterable[str | None], newcomer: Chat | None = None, data: Mapping[str, Any] | None = None
    ) -> bool:
        """Offer the waiting chats of these queues in arrival order while someone can take them; then `newcomer`, a
        chat not tried yet, unless chats that arrived before it still wait. Answers whether an offer of `newcomer`
        carrying `data` was written (and so its operators told)."""
        done = Rerouted()
        for queue_id in dict.fromkeys(queue_ids):
            mine = newcomer if newcomer is not None and newcomer.queue_id == queue_id else None
            routing = await self._routing(queue_id)
            if routing is None:
                if mine is not None:  # in line for when the queue can route again (its rule is fixed by an admin)
                    await self._chats.change(changes.mark_waiting(mine))
                continue
            async with self._locks[routing.queue.id]:
                rerouted = await self._dispatch_queue(routing, mine, data or {})
            await self._publish(rerouted.written)
            done.add(rerouted)
            done.told = done.told or rerouted.told
        await self.after_release(done.freed)
        return done.told

    async def route_many(self, arrivals: Sequence[tuple[Chat, Message]]) -> dict[str, Arrived]:
        """`route` for many chats nobody holds or was offered (each once, in the order they came, with the first
        message routed), each queue's under one acquisition of its lock: its waiting line and its operators read
        once, then the line offered in arrival order and each newcomer behind it (it waits if the line is blocked,
        and so do the newcomers behind it), every claim atomic and every change compare-and-set as `dispatch`'s.
        The notifications are published together after letting go of the locks. Answers what became of each chat."""
        arrived: dict[str, Arrived] = {}
        written: list[Written] = []
        freed: list[str] = []
        by_queue: dict[str | None, list[tuple[Chat, Message]]] = {}
        for chat, message in arrivals:
            by_queue.setdefault(chat.queue_id, []).append((chat, message))
        for queue_id, mine in by_queue.items():
            routing = await self._routing(queue_id)
            if routing is None:  # in line for when the queue can route again (its rule is fixed by an admin)
                for chat, _ in mine:
                    arrived[chat.id] = await self._wait(chat)
                continue
            async with self._locks[routing.queue.id]:
                done = await self._dispatch_arrivals(routing, mine, arrived)
            written += done.written
            freed += done.freed
        await self._notices.publish_many([done.outbox for done in written])
        await self.after_release(freed)
        return arrived

    async def _wait(self, chat: Chat) -> Arrived:
        """The chat in its queue's waiting line (it is, or it joins it now)."""
        if chat.waiting:
            return Arrived(chat)
        written = await self._chats.change(changes.mark_waiting(chat))
        return Arrived(written.chat if written is not None else None)

    async def _dispatch_arrivals(
        self, routing: Routing, arrivals: Sequence[tuple[Chat, Message]], arrived: dict[str, Arrived]
    ) -> Rerouted:
        """`_dispatch_queue` for many newcomers, the queue's operators read once for them all."""
        done = Rerouted()
        team = Team(self._operators, routing.queue.operator_ids)
        now = self._clock.time()
        blocked = False
        line: dict[str, Arrived] = {}
        # The line and the team read side by side: the newcomers are decided on this read of the team anyway.
        waiting, _ = await asyncio.gather(self._chats.waiting(routing.queue.id, BATCH), team.read())
        for chat in waiting:
            if not_yet(chat, now):
                continue
            rerouted = await self._reoffer(chat, routing, Reoffer(), team)
            line[chat.id] = _arrived(chat, rerouted)
            if done.add(rerouted) is Outcome.NOBODY:
                blocked = True
                break
        # Each newcomer decided in turn (its claim atomic), its write started at once and awaited with the others
        # before the lock is let go: a decision needs the claims before it, not their chats' writes. A write that
        # lost to another change gives its unit back (the team is read again).
        writes: dict[str, Awaitable[Rerouted]] = {}
        for chat, message in arrivals:
            if chat.waiting:  # in the line: offered above (without the message), or still waiting in it
                arrived[chat.id] = line.get(chat.id, Arrived(chat))
            elif blocked or not_yet(chat, now):
                writes[chat.id] = asyncio.ensure_future(self._waits(chat))
            else:
                how = Reoffer(data={"message": message_view(message)})
                choice, plan = await self._decide(chat, routing, how, team)
                writes[chat.id] = asyncio.ensure_future(self._write_offer(chat, choice, plan, team))
                # Offered to nobody, it waits now: the newcomers behind it wait behind it.
                blocked = choice.outcome is Outcome.NOBODY
        outcomes = await asyncio.gather(*writes.values(), return_exceptions=True)
        chats = {chat.id: chat for chat, _ in arrivals}
        for chat_id, outcome in zip(writes, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            done.add(outcome)
            arrived[chat_id] = _arrived(chats[chat_id], outcome)
        return done

    async def _waits(self, chat: Chat) -> Rerouted:
        """`_wait`, as offering it to nobody would answer."""
        written = await self._chats.change(changes.mark_waiting(chat))
        return Rerouted(Outcome.NOBODY, written=[written]) if written is not None else Rerouted(Outcome.SKIPPED)

    async def _dispatch_queue(self, routing: Routing, newcomer: Chat | None, data: Mapping[str, Any]) -> Rerouted:
        """The queue's waiting line, then the newcomer (behind the line: it waits if the line is blocked)."""
        done = Rerouted()
        team = Team(self._operators, routing.queue.operator_ids)  # read once for the line and the newcomer
        blocked = False
        now = self._clock.time()
        for chat in await self._chats.waiting(routing.queue.id, BATCH):
            if not_yet(chat, now):  # opened out of hours: offered at the next opening, by the sweep then
                continue
            if done.add(await self._reoffer(chat, routing, Reoffer(), team)) is Outcome.NOBODY:
                blocked = True
                break
        if newcomer is None or newcomer.waiting:
            return done
        if blocked or not_yet(newcomer, now):
            await self._chats.change(changes.mark_waiting(newcomer))
            return done
        offered = await self._reoffer(newcomer, routing, Reoffer(data=data), team)
        done.add(offered)
        done.told = offered.told
        return done

    async def move_on(self, chat: Chat, reason: str, *, decline: str | None = None) -> Outcome:
        """Take the offer from whoever has it now and offer the chat again by its queue's rule.

        After a timeout the rule's other operators come first and the same one is offered it again only if nobody
        else can take it; an operator who declined is never offered it again.
        """
        routing = await self._routing(chat.queue_id)
        if routing is None:
            return Outcome.NOBODY
        timeout = reason == "offer_timeout"
        how = Reoffer(later=chat.offered_to if timeout else (), decline=decline, remind=timeout, reason=reason)
        async with self._locks[routing.queue.id]:
            rerouted = await self._reoffer(chat, routing, how)
        await self._publish(rerouted.written)
        await self.after_release(rerouted.freed)
        return rerouted.outcome

    async def _reoffer(self, chat: Chat, routing: Routing, how: Reoffer, team: Team | None = None) -> Rerouted:
        """Decide who the chat is offered to now and write it (for the caller to publish once it let go of the
        queue's lock); a unit this chat held and no longer does is given back. `team`: the queue's operators as read
        for this and other decisions (default: read for this one)."""
        team = team or Team(self._operators, routing.queue.operator_ids)
        choice, plan = await self._decide(chat, routing, how, team)
        return await self._write_offer(chat, choice, plan, team)

    async def _decide(self, chat: Chat, routing: Routing, how: Reoffer, team: Team) -> tuple[Choice, OfferPlan]:
        """Who the chat is offered to now (its unit claimed), and what offering it so writes."""
        choice = await self._choose(chat, routing, how.declined(chat), how.later, team)
        deadline = offer_deadline(routing.queue, self._offer_timeout, self._clock.time())
        return choice, changes.plan_offer(chat, choice, how, deadline=deadline, new_id=self._clock.new_id)

    async def _write_offer(self, chat: Chat, choice: Choice, plan: OfferPlan, team: Team) -> Rerouted:
        """The offer decided written (compare-and-set); the unit claimed for it given back if another change came
        first, and a unit the chat held and no longer does given back."""
        if plan.update is None:
            return Rerouted(choice.outcome)
        written = await self._chats.change(plan.update)
        if written is None:
            if choice.claimed and choice.reserve:
                await self._capacity.release(choice.reserve, chat.id)
                team.forget()
            return Rerouted(Outcome.SKIPPED)
        freed = []
        reserved = chat.reserved_for
        if reserved and reserved != choice.reserve and await self._capacity.release(reserved, chat.id):
            freed.append(reserved)
            team.forget()
        return Rerouted(choice.outcome, freed, [written], bool(plan.told))

    async def _choose(
        self, chat: Chat, routing: Routing, declined: Sequence[str], later: Sequence[str], team: Team
    ) -> Choice:
        """Whom the rule offers the chat to now. A rule that holds capacity gets the first operator, in its order of
        preference, whose unit could be claimed (a chat keeps the unit it holds)."""
        picked = Pick((), (), {})
        for _ in range(CLAIM_ROUNDS):
            operators = await team.read()
            picked = pick(routing.rule, [candidate(op, chat.reserved_for) for op in operators], declined)
            if not holds_capacity(routing.rule):
                return picked.to_everyone()
            choice = await self._claim_first(chat, picked, later, team)
            if choice is not None:
                return choice
            if not picked.allowed:
                break
            team.forget()  # a claim was refused: read them again
        return picked.to_nobody()

    async def _claim_first(self, chat: Chat, picked: Pick, later: Sequence[str], team: Team) -> Choice | None:
        for op in picked.preference(later):
            if op == chat.reserved_for:
                return picked.to(op, claimed=False)
            if await self._capacity.claim(op, chat.id, expected_load=picked.loads.get(op, 0)) is Claim.TAKEN:
                team.took(op, self._clock.time())
                return picked.to(op, claimed=True)
            team.forget()
        return None

    async def _publish(self, written: list[Written]) -> None:
        """Publish the notifications of chats written under a queue's lock, after letting go of it: the lock orders
        routing decisions, and publishing (a stored record, broker confirms, the outbox emptied) would only make the
        next decision wait. A crash in between leaves them in the outboxes for the sweep."""
        for done in written:
            await self._notices.publish(done.outbox)

    async def after_release(self, operator_ids: Iterable[str]) -> None:
        """Operators got capacity back: the waiting chats of their queues may be offered now."""
        freed = list(dict.fromkeys(operator_ids))
        if freed:
            await self.dispatch(await self._queues.ids_with_any(freed))

    # Operators coming and going ----------------------------------------------------------------------------------

    async def operator_online(self, operator_id: str) -> None:
        """Offer them what waits in their queues, and add them to open offers of rules that offer to many."""
        queues = await self._queues.of_operator(operator_id)
        await self.dispatch([q.id for q in queues])
        for queue in queues:
            routing = self._routing_of(queue)
            if routing is None or holds_capacity(routing.rule):
                continue
            done = Rerouted()
            async with self._locks[queue.id]:
                for chat in await self._chats.offered_in(queue.id, BATCH):
                    done.add(await self._reoffer(chat, routing, Reoffer(keep=True)))
            await self._publish(done.written)

    async def operator_offline(self, operator_ids: Sequence[str]) -> None:
        """Their pending offers go to others; their assigned chats return to queues that say so."""
        if not operator_ids:
            return
        for chat in await self._chats.offered_to_any(operator_ids, BATCH):
            await self.move_on(chat, "operator_offline")
        returning = await self._queues.returning_ids()
        if returning:
            for chat in await self._chats.held_by(operator_ids, returning, BATCH):
                await self.requeue(chat, chat.queue_id or "", reason="operator_offline")

    # Holding, handing over and closing ---------------------------------------------------------------------------

    async def assign(
        self, chat: Chat, operator_id: str, *, reason: str, online_only: bool, guard: Guard
    ) -> Chat | None:
        """Give the chat to `operator_id`, taking a unit of their capacity; None if the chat changed first."""
        claim = await self._capacity.claim(operator_id, chat.id, online_only=online_only)
        if claim is Claim.REFUSED:
            raise Conflict("at_capacity", "the operator is at capacity" + (" or not online" if online_only else ""))
        update = changes.assign(
            chat, operator_id, reason=reason, guard=guard, at=self._clock.now(), new_id=self._clock.new_id
        )
        written = await self._chats.change(update)
        if written is None:
            if claim is Claim.TAKEN:
                await self._capacity.release(operator_id, chat.id)
            return None
        await self._finish(update, written, keep=operator_id)
        return written.chat

    async def requeue(self, chat: Chat, queue_id: str, *, reason: str) -> Chat | None:
        """Put the chat back in the waiting line of `queue_id` (in its arrival order) and route it."""
        update = changes.requeue(chat, queue_id, reason=reason, new_id=self._clock.new_id)
        written = await self._chats.change(update)
        if written is None:
            return None
        await self._finish(update, written)
        await self.dispatch([queue_id])
        return written.chat

    async def close(self, chat: Chat, *, by: str | None, reason: str, due_by: float | None = None) -> Chat | None:
        """Close the chat; a queue that asks for ratings has its question sent to the customer once."""
        asks = csat_of(await self.settings.queue(chat.queue_id))
        ask = CsatAsk(self._clock.new_id(), self._clock.time() + CSAT_WINDOW_SECONDS) if asks else None
        update = changes.close(
            chat, by=by, reason=reason, at=self._clock.now(), due_by=due_by, csat=ask, new_id=self._clock.new_id
        )
        written = await self._chats.change(update)
        if written is None:
            return None
        await self._finish(update, written)
        if asks is not None:
            await self._courtesy.ask_rating(written.chat, asks.question)
        return written.chat

    async def _finish(self, update: ChatUpdate, written: Written, keep: str | None = None) -> None:
        """After a change: give back the units the chat no longer uses, publish, let waiting chats move."""
        freed = [
            op for op in changes.units_freed(update.before, keep) if await self._capacity.release(op, update.before.id)
        ]
        await self._notices.publish(written.outbox)
        await self.after_release(freed)

    # What time moves on ------------------------------------------------------------------------------------------

    async def expire_offers(self) -> int:
        """Offers past their deadline move on."""
        chats = await self._chats.offers_expired(self._clock.time(), BATCH)
        for chat in chats:
            if chat.status == "new":  # move_on changes it only if it still is
                await self.move_on(chat, "offer_timeout")
            else:  # a deadline no change cleared (none does that now) must not come back every sweep
                await self._chats.drop_offer_deadline(chat)
        return len(chats)

    async def withdraw_from_offline(self) -> None:
        """What an operator's going offline should have moved but did not (a crash, an admin edit)."""
        await self.operator_offline(await self._operators.offline_ids())

    async def dispatch_all(self) -> None:
        await self.dispatch(await self._chats.queues_waiting())

    async def close_due(self) -> int:
        """Close the chats whose completion timeout has passed without a message."""
        closed = 0
        for chat in await self._chats.due(self._clock.time(), BATCH):
            if await self.reschedule(chat):
                continue
            # The condition again in the write: a message that came meanwhile has moved `due_at`.
            if await self.close(chat, by=None, reason="completion_timeout", due_by=self._clock.time()):
                closed += 1
        return closed

    async def reschedule(self, chat: Chat) -> bool:
        """Move a chat's due time to what its queue says now (its timeout or its queue may have changed since it was
        set); False if it is due indeed."""
        due = due_time(await self.settings.queue(chat.queue_id), float(chat.active_at or 0))
        if due is not None and due <= self._clock.time():
            return False
        await self._chats.reschedule(chat, due)
        return True

    async def postpone_many(self, chats: Sequence[tuple[Chat, datetime | None, int]]) -> None:
        """`postpone_completion` for each chat (with its last message's time and how many customer messages it got),
        in one write."""
        active_at = self._clock.time()
        postponed = [
            Postponement(chat.id, active_at, due_time(await self.settings.queue(chat.queue_id), active_at), last, count)
            for chat, last, count in chats
        ]
        await self._chats.postpone_many(postponed)

    async def postpone_completion(self, chat: Chat, last_message_at: datetime | None = None) -> None:
        """A message went in or out: the chat's completion timeout starts again (and, for a customer's message, the
        chat's last message time moves on), in one write."""
        active_at = self._clock.time()
        due = due_time(await self.settings.queue(chat.queue_id), active_at)
        await self._chats.postpone(chat.id, active_at, due, last_message_at)
