"""Who may see and do what: the chats an operator may see and list, the actions they may take on one, tokens."""

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from omni_router.domain.model import Chat, Operator, Queue

QueueAction = Literal["accept", "reply", "close", "transfer", "decline", "note", "label"]
# What a queue's `actions` may allow (API.md); a queue without the field allows them all.
QUEUE_ACTIONS: tuple[QueueAction, ...] = ("accept", "reply", "close", "transfer", "decline", "note", "label")
# GetChatActions' names that a queue's actions call otherwise.
QUEUE_ACTION_OF = {"send": "reply"}


@dataclass(frozen=True)
class Visibility:
    """The chats an operator may list: every chat (`operator_id` None: a supervisor), or those offered to or held by
    `operator_id`."""

    operator_id: str | None


def visibility(operator: Operator) -> Visibility:
    """The chats an operator may see: offered to or held by them; a supervisor sees all."""
    return Visibility(None if operator.is_supervisor else operator.id)


def may_see(chat: Chat, operator: Operator, *, offered_before: bool = False) -> bool:
    """What `visibility` selects, for one chat: offered to or held by them (or, with `offered_before`, ever
    offered to them); a supervisor sees all."""
    if operator.is_supervisor:
        return True
    me = operator.id
    if chat.operator_id == me or me in chat.offered_to:
        return True
    return offered_before and me in chat.offered_ever


def is_offered_to(chat: Chat, operator_id: str) -> bool:
    """Whether the chat waits for this operator's answer to its offer."""
    return chat.status == "new" and operator_id in chat.offered_to


def queue_allows(queue: Queue | None, action: str) -> bool:
    """Whether the chat's queue lets its operators take `action` at all (reading is always allowed)."""
    action = QUEUE_ACTION_OF.get(action, action)
    if queue is None or queue.actions is None or action not in QUEUE_ACTIONS:
        return True
    return action in queue.actions


def allowed_actions(chat: Chat, operator: Operator, queue: Queue | None = None) -> list[str]:
    """What this operator may do with the chat now (GetChatActions), of what its queue allows."""
    if chat.status == "closed":
        return []
    offered = is_offered_to(chat, operator.id)
    privileged = chat.operator_id == operator.id or operator.is_supervisor  # its holder, or a supervisor
    answering = privileged or offered
    granted = {
        "accept": chat.status == "new" and (offered or operator.is_supervisor),
        "decline": offered,
        "read": answering,
        "send": answering,
        "close": answering,
        "transfer": privileged,
    }
    return [action for action, allowed in granted.items() if allowed and queue_allows(queue, action)]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token (operators' tokens, stream tickets): never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()
