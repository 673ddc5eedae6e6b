"""Every change of a chat's state, decided as a value: the chat after it, the fields it writes, the
notifications it causes and the state the chat must still be in for it to apply.

A change applies only if the chat is still the version it was read at (the repository's compare-and-set),
with its notifications queued in the chat's outbox in the same write. Nothing here touches storage.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from omni_router.domain.integration import integration_event
from omni_router.domain.model import OPEN_STATUSES, Chat
from omni_router.domain.notifications import Queued, audience, involved, notifications
from omni_router.domain.routing import Choice
from omni_router.domain.views import chat_view

NewId = Callable[[], str]


@dataclass(frozen=True)
class Guard:
    """What must still hold for a change to apply besides the version: the chat's status is one of `statuses`,
    and (with `due_by`) its due time has come by then (a message meanwhile moves it later)."""

    statuses: tuple[str, ...] = OPEN_STATUSES
    due_by: float | None = None


NEW_ONLY = Guard(("new",))
OPEN = Guard(OPEN_STATUSES)


@dataclass(frozen=True)
class ChatUpdate:
    """A change of `before` into `after`: the `fields` written from `after`, `notes` queued with them."""

    before: Chat
    after: Chat
    fields: tuple[str, ...]
    notes: tuple[Queued, ...] = ()
    guard: Guard = OPEN


def waiting_in(chat: Chat) -> str | None:
    """The chat's place in its queue's waiting line: its queue while it waits (new, offered to nobody); read
    through an index of its own."""
    if chat.waiting and chat.status == "new" and chat.queue_id:
        return chat.queue_id
    return None


def update(chat: Chat, guard: Guard, notes: Iterable[Queued] = (), **fields: Any) -> ChatUpdate:
    """The chat with `fields` changed; its place in the waiting line follows every change."""
    after = replace(chat, **fields)
    after = replace(after, waiting_in=waiting_in(after))
    return ChatUpdate(chat, after, (*fields, "waiting_in"), tuple(notes), guard)


def mark_waiting(chat: Chat) -> ChatUpdate:
    """Nobody can take the chat now: it joins its queue's waiting line."""
    return update(chat, NEW_ONLY, waiting=True)


@dataclass(frozen=True)
class Reoffer:
    """How a chat is offered again. `later`: operators tried last; `decline`: an operator who turned it down (never
    offered it again); `remind`: tell again whoever keeps the offer; `keep`: only add operators, never take the
    offer from anyone; `data`: added to the offer's notification; `reason`: of the revocations it causes."""

    later: tuple[str, ...] = ()
    decline: str | None = None
    remind: bool = False
    keep: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    reason: str = "reoffered"

    def declined(self, chat: Chat) -> tuple[str, ...]:
        """Who the chat may never be offered to after this."""
        return tuple(dict.fromkeys([*chat.declined_by, *([self.decline] if self.decline else [])]))


@dataclass(frozen=True)
class OfferPlan:
    """What offering the chat by `choice` writes (None: nothing changes) and whom it newly tells of the offer."""

    update: ChatUpdate | None
    told: tuple[str, ...] = ()


def plan_offer(chat: Chat, choice: Choice, how: Reoffer, *, deadline: float, new_id: NewId) -> OfferPlan:
    """The chat offered as `choice` says, the operators it was offered to before and no longer is told it is
    revoked; an offer that changes nothing is not written (unless it reminds)."""
    previous, declined = chat.offered_to, how.declined(chat)
    offer = tuple(dict.fromkeys([*previous, *choice.offer])) if how.keep else choice.offer
    if _changes_nothing(chat, offer, choice.reserve, declined) and not how.remind:
        return OfferPlan(None)
    told = offer if how.remind else tuple(op for op in offer if op not in previous)
    notes = [
        *notifications("chat.offered", told, {"chat": chat_view(chat), **how.data}, new_id=new_id),
        *notifications(
            "chat.revoked", [op for op in previous if op not in offer], {"reason": how.reason}, new_id=new_id
        ),
    ]
    changed = update(
        chat,
        NEW_ONLY,
        notes,
        offered_to=offer,
        offered_ever=tuple(dict.fromkeys([*chat.offered_ever, *offer])),
        reserved_for=choice.reserve,
        declined_by=declined,
        waiting=not offer,
        offer_expires_at=deadline if offer else None,
    )
    return OfferPlan(changed, told)


def _changes_nothing(chat: Chat, offer: tuple[str, ...], reserve: str | None, declined: tuple[str, ...]) -> bool:
    """Whether offering the chat so leaves it as it is: the same offer, reserve and refusals, and (offered to
    nobody) already in the waiting line."""
    same = (offer, reserve, declined) == (chat.offered_to, chat.reserved_for, chat.declined_by)
    return same and bool(offer or chat.waiting)


def assign(chat: Chat, operator_id: str, *, reason: str, guard: Guard, at: datetime, new_id: NewId) -> ChatUpdate:
    """The chat held by `operator_id` (accepted, or transferred to them); the others involved hear it is revoked,
    the webhooks' subscribers that it is assigned."""
    assigned = replace(chat, status="assigned", operator_id=operator_id)
    others = [op for op in involved(chat) if op != operator_id]
    told = {"chat": chat_view(assigned), "reason": reason}
    notes: list[Queued] = [
        *notifications("chat.assigned", [operator_id], told, new_id=new_id),
        *notifications("chat.revoked", others, {"reason": "taken" if reason == "accepted" else reason}, new_id=new_id),
        integration_event("chat.assigned", told, at=at, new_id=new_id),
    ]
    return update(
        chat,
        guard,
        notes,
        status="assigned",
        operator_id=operator_id,
        offered_to=(operator_id,),
        reserved_for=None,
        offer_expires_at=None,
    )


def requeue(chat: Chat, queue_id: str, *, reason: str, new_id: NewId) -> ChatUpdate:
    """The chat back in the waiting line of `queue_id` (in its arrival order), held by and offered to nobody."""
    return update(
        chat,
        OPEN,
        notifications("chat.revoked", involved(chat), {"reason": reason}, new_id=new_id),
        queue_id=queue_id,
        status="new",
        operator_id=None,
        offered_to=(),
        reserved_for=None,
        declined_by=(),
        waiting=True,
        offer_expires_at=None,
    )


@dataclass(frozen=True)
class CsatAsk:
    """The CSAT question a closing sends: the id it is stored under, and until when a rating may answer it."""

    message_id: str
    until: float


def close(
    chat: Chat,
    *,
    by: str | None,
    reason: str,
    at: datetime,
    due_by: float | None = None,
    csat: CsatAsk | None = None,
    new_id: NewId,
) -> ChatUpdate:
    """The chat closed; whoever holds it or it is offered to hears `chat.closed`, and the webhooks' subscribers. Its
    resolution time is kept for reports, and (`csat`) the question it asks and how the customer's rating finds it."""
    asked: dict[str, Any] = {}
    if csat is not None:
        asked = {"csat_key": f"{chat.channel_id}:{chat.contact_id}", "csat_until": csat.until}
        asked["csat_message_id"] = csat.message_id
        asked["csat_ask_at"] = at.timestamp()
    created = chat.created_at
    closed = replace(chat, status="closed", closed_at=at)
    notes: list[Queued] = [
        *notifications("chat.closed", audience(chat), {"reason": reason}, new_id=new_id),
        integration_event("chat.closed", {"chat": chat_view(closed), "reason": reason}, at=at, new_id=new_id),
    ]
    return update(
        chat,
        Guard(OPEN_STATUSES, due_by),
        notes,
        status="closed",
        closed_at=at,
        closed_ts=at.timestamp(),
        resolution_seconds=max(0.0, (at - created).total_seconds()) if created else None,
        closed_by=by,
        close_reason=reason,
        waiting=False,
        open_key=None,
        due_at=None,
        offer_expires_at=None,
        **asked,
    )


def units_freed(before: Chat, keep: str | None = None) -> list[str]:
    """The operators whose capacity unit a chat may have used before a change (its holder and the one its offer
    reserved), except `keep`, who goes on holding it."""
    return [op for op in dict.fromkeys(x for x in (before.operator_id, before.reserved_for) if x) if op != keep]


def uses_unit(chat: Chat | None, operator_id: str) -> bool:
    """Whether the chat uses a unit of the operator's capacity: open, and held by or reserved for them."""
    return chat is not None and chat.is_open and operator_id in (chat.operator_id, chat.reserved_for)
