"""The routing engine: offering chats by their queue's rule, moving offers on, the waiting line, closing.

Every change of a chat is a compare-and-set on its version with its notifications in the same
write (ChatStore.change), and every unit of operator capacity is claimed atomically before the
chat write that uses it (Capacity), so routers running side by side never overfill an operator
and repeating any step is harmless. Nothing here lives only in memory: offer deadlines, due times
and the waiting line are fields of the chats, which the sweeps (timers.py) act on.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from omni_router.capacity import Capacity, Claim
from omni_router.notify import Notifier, notes
from omni_router.routing import Candidate, RoutingRule, holds_capacity
from omni_router.store import OPEN_STATUSES, ChatStore, clock, now
from omni_router.views import chat_view, message_view
from omni_runtime.database import Document

log = logging.getLogger(__name__)

# Rounds of "read the candidates, claim the best" when concurrent claims keep winning first.
CLAIM_ROUNDS = 20
BATCH = 200


class Outcome(Enum):
    OFFERED = "offered"
    NOBODY = "nobody"  # the rule picks nobody now: the chat waits, and so do the chats behind it
    SKIPPED = "skipped"  # this chat only: everyone picked declined it, or it changed meanwhile


class Refused(Exception):
    """A chat change the engine would not make; `code` is the API's error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Choice:
    """A routing decision: whom to offer the chat to, and the operator whose capacity unit the offer holds."""

    outcome: Outcome
    offer: list[str]
    reserve: str | None = None
    claimed: bool = False  # the unit was claimed for this decision (and is given back if it is not written)

    @classmethod
    def of(cls, picked: list[str], offer: list[str], reserve: str | None = None, claimed: bool = False) -> "Choice":
        outcome = Outcome.OFFERED if offer else Outcome.SKIPPED if picked else Outcome.NOBODY
        return cls(outcome, offer, reserve, claimed)


def audience(chat: Document) -> list[str]:
    """Who hears about a chat now: its holder, or everyone it is offered to while nobody holds it."""
    if chat.get("operator_id"):
        return [chat["operator_id"]]
    if chat.get("status") in OPEN_STATUSES:
        return list(chat.get("offered_to", []))
    return []


def involved(chat: Document) -> list[str]:
    """Everyone a change of the chat concerns: its holder and whoever it is offered to."""
    return list(dict.fromkeys(op for op in [chat.get("operator_id"), *chat.get("offered_to", [])] if op))


class Offers:
    def __init__(
        self,
        store: ChatStore,
        capacity: Capacity,
        notifier: Notifier,
        rules: dict[str, RoutingRule],
        offer_timeout_seconds: float,
    ) -> None:
        self.store = store
        self._db = store.db
        self._capacity = capacity
        self._notifier = notifier
        self._rules = rules
        self._offer_timeout = offer_timeout_seconds
        # One routing decision per queue at a time in this process keeps claims from racing each other
        # here; other router processes are kept honest by the atomic claims and compare-and-set writes.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def candidates(self, queue: Document) -> list[Candidate]:
        operators = self._db.operators.find({"_id": {"$in": list(queue.get("operator_ids", []))}})
        return [
            Candidate(
                id=op["_id"],
                status=op.get("status", "offline"),
                role=op.get("role", "operator"),
                max_chats=int(op.get("max_chats") or 0),
                active_chats=int(op.get("load") or 0),
                idle_since=float(op.get("last_routed_at") or 0),
            )
            async for op in operators
        ]

    def _rule(self, queue: Document | None) -> RoutingRule | None:
        if queue is None:
            return None
        rule = self._rules.get(queue.get("routing_rule", ""))
        if rule is None:
            log.error("queue has an unknown routing rule", extra={"queue_id": queue["_id"]})
        return rule

    # Routing ---------------------------------------------------------------------------------------------

    async def route(self, chat: Document, message: Document) -> None:
        """A customer message was stored: offer its chat if nobody holds or was offered it, else tell them."""
        if chat.get("status") not in OPEN_STATUSES:
            return
        if chat.get("operator_id") or chat.get("offered_to"):
            await self._notifier.send(
                "message.new", chat["_id"], audience(chat), {"message": message_view(message)}, key=message["_id"]
            )
            return
        data = {"message": message_view(message)}
        if await self.dispatch([chat["queue_id"]], newcomer=chat, data=data):
            return
        # Another message of this chat was offering it at the same moment, and its offer carried only
        # that message: whoever may see the chat now hears of this one too.
        current = await self._db.chats.find_one({"_id": chat["_id"]})
        if current is not None and current.get("status") in OPEN_STATUSES and audience(current):
            await self._notifier.send("message.new", chat["_id"], audience(current), data, key=message["_id"])

    async def dispatch(
        self, queue_ids: Iterable[str], newcomer: Document | None = None, data: dict[str, Any] | None = None
    ) -> bool:
        """Offer the waiting chats of these queues in arrival order while someone can take them; then
        `newcomer`, a chat not tried yet, unless chats that arrived before it still wait. Answers whether
        an offer of `newcomer` carrying `data` was written (and so its operators told)."""
        freed: list[str] = []
        carried: list[bool] = []
        for queue_id in dict.fromkeys(queue_ids):
            queue = await self.store.queue(queue_id)
            rule = self._rule(queue)
            if queue is None or rule is None:
                if newcomer is not None and newcomer["queue_id"] == queue_id:
                    # In line for when the queue can route again (its rule is fixed by an admin).
                    await self.store.change(newcomer, {"waiting": True}, where={"status": "new"})
                continue
            written: list[Document] = []
            async with self._locks[queue_id]:
                blocked = False
                query = {"waiting_in": queue_id, "status": "new", "waiting": True}
                for chat in await self._db.chats.find(query).sort("_id", 1).limit(BATCH).to_list():
                    outcome, released = await self._reoffer(chat, queue, rule, written=written)
                    freed += released
                    if outcome is Outcome.NOBODY:
                        blocked = True
                        break
                if newcomer is not None and newcomer["queue_id"] == queue_id and not newcomer.get("waiting"):
                    if blocked:
                        await self.store.change(newcomer, {"waiting": True}, where={"status": "new"})
                    else:
                        _, released = await self._reoffer(
                            newcomer, queue, rule, data=data, told_any=carried, written=written
                        )
                        freed += released
            await self._deliver(written)
        await self.after_release(freed)
        return any(carried)

    async def move_on(self, chat: Document, reason: str, *, decline: str | None = None) -> Outcome:
        """Take the offer from whoever has it now and offer the chat again by its queue's rule.

        After a timeout the rule's other operators come first and the same one is offered it again
        only if nobody else can take it; an operator who declined is never offered it again.
        """
        queue = await self.store.queue(chat.get("queue_id"))
        rule = self._rule(queue)
        if queue is None or rule is None:
            return Outcome.NOBODY
        timeout = reason == "offer_timeout"
        written: list[Document] = []
        async with self._locks[queue["_id"]]:
            outcome, freed = await self._reoffer(
                chat,
                queue,
                rule,
                later=chat.get("offered_to", []) if timeout else (),
                decline=decline,
                remind=timeout,
                reason=reason,
                written=written,
            )
        await self._deliver(written)
        await self.after_release(freed)
        return outcome

    async def _reoffer(
        self,
        chat: Document,
        queue: Document,
        rule: RoutingRule,
        *,
        later: Sequence[str] = (),
        decline: str | None = None,
        remind: bool = False,
        keep: bool = False,
        data: dict[str, Any] | None = None,
        reason: str = "reoffered",
        told_any: list[bool] | None = None,
        written: list[Document],
    ) -> tuple[Outcome, list[str]]:
        """Decide who the chat is offered to now and write it; answers the outcome and the operators whose
        capacity unit this chat gave back. `later`: tried last; `remind`: notify again whoever keeps the offer;
        `keep`: add operators, never take the offer away from anyone. The chat as written is added to
        `written`, for the caller to publish its notifications once it let go of the queue's lock."""
        previous: list[str] = list(chat.get("offered_to", []))
        declined = list(dict.fromkeys([*chat.get("declined_by", []), *([decline] if decline else [])]))
        choice = await self._choose(chat, queue, rule, declined, later)
        offer = list(dict.fromkeys([*previous, *choice.offer])) if keep else choice.offer
        unchanged = (
            offer == previous and choice.reserve == chat.get("reserved_for") and declined == chat.get("declined_by", [])
        )
        if unchanged and not remind and (offer or chat.get("waiting")):
            return choice.outcome, []
        changes: Document = {
            "offered_to": offer,
            "offered_ever": list(dict.fromkeys([*chat.get("offered_ever", []), *offer])),
            "reserved_for": choice.reserve,
            "declined_by": declined,
            "waiting": not offer,
        }
        if offer:
            changes["offer_expires_at"] = clock() + float(queue.get("offer_timeout_seconds") or self._offer_timeout)
        told = offer if remind else [op for op in offer if op not in previous]
        updated = await self.store.change(
            chat,
            changes,
            unset=() if offer else ("offer_expires_at",),
            notify=[
                *notes("chat.offered", told, {"chat": chat_view(chat), **(data or {})}),
                *notes("chat.revoked", [op for op in previous if op not in offer], {"reason": reason}),
            ],
            where={"status": "new"},
        )
        if updated is None:
            if choice.claimed and choice.reserve:
                await self._capacity.release(choice.reserve, chat["_id"])
            return Outcome.SKIPPED, []
        written.append(updated)
        if told_any is not None and told:
            told_any.append(True)
        reserved = chat.get("reserved_for")
        if reserved and reserved != choice.reserve and await self._capacity.release(reserved, chat["_id"]):
            return choice.outcome, [reserved]
        return choice.outcome, []

    async def _choose(
        self, chat: Document, queue: Document, rule: RoutingRule, declined: list[str], later: Sequence[str]
    ) -> Choice:
        """Whom the rule offers the chat to now. A rule that holds capacity gets the first operator, in its
        order of preference, whose unit could be claimed (a chat keeps the unit it holds)."""
        reserved: str | None = chat.get("reserved_for")
        for _ in range(CLAIM_ROUNDS):
            candidates = [_as_seen_by(c, reserved) for c in await self.candidates(queue)]
            picked = rule(candidates)
            allowed = [op for op in picked if op not in declined]
            if not holds_capacity(rule):
                return Choice.of(picked, allowed)
            loads = {c.id: c.active_chats for c in candidates}
            for op in [op for op in allowed if op not in later] + [op for op in allowed if op in later]:
                if op == reserved:
                    return Choice.of(picked, [op], reserve=op)
                if await self._capacity.claim(op, chat["_id"], expected_load=loads.get(op, 0)) is Claim.TAKEN:
                    return Choice.of(picked, [op], reserve=op, claimed=True)
            if not allowed:
                return Choice.of(picked, [])
        return Choice.of(picked, [])

    async def _deliver(self, written: list[Document]) -> None:
        """Publish the notifications of chats written under a queue's lock, after letting go of it: the lock
        orders routing decisions, and publishing (a stored record, broker confirms, the outbox emptied) would
        only make the next decision wait. A crash in between leaves them in the outboxes for the sweep."""
        for chat in written:
            await self._notifier.deliver(chat)

    async def after_release(self, operator_ids: Iterable[str]) -> None:
        """Operators got capacity back: the waiting chats of their queues may be offered now."""
        freed = list(dict.fromkeys(operator_ids))
        if freed:
            await self.dispatch([q["_id"] async for q in self._db.queues.find({"operator_ids": {"$in": freed}})])

    # Operators coming and going --------------------------------------------------------------------------

    async def operator_online(self, operator_id: str) -> None:
        """Offer them what waits in their queues, and add them to open offers of rules that offer to many."""
        queues = [q async for q in self._db.queues.find({"operator_ids": operator_id})]
        await self.dispatch([q["_id"] for q in queues])
        for queue in queues:
            rule = self._rule(queue)
            if rule is None or holds_capacity(rule):
                continue
            query = {"queue_id": queue["_id"], "status": "new", "waiting": False}
            written: list[Document] = []
            async with self._locks[queue["_id"]]:
                for chat in await self._db.chats.find(query).sort("_id", 1).limit(BATCH).to_list():
                    await self._reoffer(chat, queue, rule, keep=True, written=written)
            await self._deliver(written)

    async def operator_offline(self, operator_ids: Sequence[str]) -> None:
        """Their pending offers go to others; their assigned chats return to queues that say so."""
        if not operator_ids:
            return
        pending = {"status": "new", "offered_to": {"$in": list(operator_ids)}}
        for chat in await self._db.chats.find(pending).sort("_id", 1).limit(BATCH).to_list():
            await self.move_on(chat, "operator_offline")
        returning = [q["_id"] async for q in self._db.queues.find({"on_operator_offline": "return"}, {"_id": 1})]
        if returning:
            held = {"status": "assigned", "operator_id": {"$in": list(operator_ids)}, "queue_id": {"$in": returning}}
            for chat in await self._db.chats.find(held).sort("_id", 1).limit(BATCH).to_list():
                await self.requeue(chat, chat["queue_id"], reason="operator_offline")

    # Holding, handing over and closing -------------------------------------------------------------------

    async def assign(
        self, chat: Document, operator_id: str, *, reason: str, online_only: bool, where: Document
    ) -> Document | None:
        """Give the chat to `operator_id`, taking a unit of their capacity; None if the chat changed first."""
        claim = await self._capacity.claim(operator_id, chat["_id"], online_only=online_only)
        if claim is Claim.REFUSED:
            raise Refused("at_capacity", "the operator is at capacity" + (" or not online" if online_only else ""))
        others = [op for op in involved(chat) if op != operator_id]
        assigned = {**chat, "status": "assigned", "operator_id": operator_id}
        updated = await self.store.change(
            chat,
            {"status": "assigned", "operator_id": operator_id, "offered_to": [operator_id], "reserved_for": None},
            unset=("offer_expires_at",),
            notify=[
                *notes("chat.assigned", [operator_id], {"chat": chat_view(assigned), "reason": reason}),
                *notes("chat.revoked", others, {"reason": "taken" if reason == "accepted" else reason}),
            ],
            where=where,
        )
        if updated is None:
            if claim is Claim.TAKEN:
                await self._capacity.release(operator_id, chat["_id"])
            return None
        await self._finish(chat, updated, keep=operator_id)
        return updated

    async def requeue(self, chat: Document, queue_id: str, *, reason: str) -> Document | None:
        """Put the chat back in the waiting line of `queue_id` (in its arrival order) and route it."""
        updated = await self.store.change(
            chat,
            {
                "queue_id": queue_id,
                "status": "new",
                "operator_id": None,
                "offered_to": [],
                "reserved_for": None,
                "declined_by": [],
                "waiting": True,
            },
            unset=("offer_expires_at",),
            notify=notes("chat.revoked", involved(chat), {"reason": reason}),
            where={"status": {"$in": list(OPEN_STATUSES)}},
        )
        if updated is not None:
            await self._finish(chat, updated)
            await self.dispatch([queue_id])
        return updated

    async def close(
        self, chat: Document, *, by: str | None, reason: str, where: Document | None = None
    ) -> Document | None:
        updated = await self.store.change(
            chat,
            {"status": "closed", "closed_at": now(), "closed_by": by, "close_reason": reason, "waiting": False},
            unset=("open_key", "due_at", "offer_expires_at"),
            notify=notes("chat.closed", audience(chat), {"reason": reason}),
            where={"status": {"$in": list(OPEN_STATUSES)}, **(where or {})},
        )
        if updated is not None:
            await self._finish(chat, updated)
        return updated

    async def _finish(self, before: Document, after: Document, keep: str | None = None) -> None:
        """After a change: give back the units the chat no longer uses, publish, let waiting chats move."""
        freed = [
            op
            for op in dict.fromkeys(x for x in (before.get("operator_id"), before.get("reserved_for")) if x)
            if op != keep and await self._capacity.release(op, before["_id"])
        ]
        await self._notifier.deliver(after)
        await self.after_release(freed)

    # Sweeps ----------------------------------------------------------------------------------------------

    async def expire_offers(self) -> int:
        # By the deadline alone (set only on chats offered and new): with the status too, nx-27017 reads every
        # new chat (35 ms for 16,000 on every sweep) instead of using the deadline's index (1 ms).
        expired = {"offer_expires_at": {"$lte": clock()}}
        chats = await self._db.chats.find(expired).sort("offer_expires_at", 1).limit(BATCH).to_list()
        for chat in chats:
            if chat.get("status") == "new":  # move_on changes it only if it still is
                await self.move_on(chat, "offer_timeout")
            else:  # a deadline no change cleared (none does that now) must not come back every sweep
                await self._db.chats.update_one(
                    {"_id": chat["_id"], "status": chat.get("status")}, {"$unset": {"offer_expires_at": ""}}
                )
        return len(chats)

    async def withdraw_from_offline(self) -> None:
        """What an operator's going offline should have moved but did not (a crash, an admin edit)."""
        offline = [op["_id"] async for op in self._db.operators.find({"status": "offline"}, {"_id": 1})]
        await self.operator_offline(offline)

    async def dispatch_all(self) -> None:
        await self.dispatch(await self._db.chats.distinct("waiting_in", {"waiting_in": {"$exists": True}}))

    async def close_due(self) -> int:
        """Close the chats whose completion timeout has passed without a message."""
        due = {"status": {"$in": list(OPEN_STATUSES)}, "due_at": {"$lte": clock()}}
        closed = 0
        for chat in await self._db.chats.find(due).sort("due_at", 1).limit(BATCH).to_list():
            if await self.store.reschedule(chat):
                continue
            # The condition again in the write: a message that came meanwhile has moved `due_at`.
            if await self.close(chat, by=None, reason="completion_timeout", where={"due_at": {"$lte": clock()}}):
                closed += 1
        return closed


def _as_seen_by(candidate: Candidate, reserved_for: str | None) -> Candidate:
    """The candidate as routing one chat sees them: the unit this chat holds already counts as free."""
    if candidate.id != reserved_for:
        return candidate
    return replace(candidate, active_chats=max(candidate.active_chats - 1, 0))
