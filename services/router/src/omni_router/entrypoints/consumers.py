"""The router's queue consumers: customers' messages from the input partitions, reports from other services on
`router.updates`, and what leftover input queues still hold. Each parses into a contract and calls one use case;
a refusal that no retry can change (the message's channel is gone) parks the message at once."""

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TypeVar

from omni_contracts import MessageReceived, ProfileResolved, RouterUpdate
from omni_router.domain.errors import NotFound
from omni_router.service_layer.ports import Events
from omni_runtime.errors import PermanentError
from omni_runtime.topology import chat_key

M = TypeVar("M")


def parking_refusals(handle: Callable[[M], Awaitable[None]]) -> Callable[[M], Awaitable[None]]:
    """The handler, with what it cannot find parked at once (with the reason) instead of retried."""

    @wraps(handle)
    async def handler(message: M) -> None:
        try:
            await handle(message)
        except NotFound as missing:
            raise PermanentError(missing.detail) from None

    return handler


def chat_of(event: MessageReceived) -> str:
    """The order key of the router's input: one chat's messages are handled one at a time, in order."""
    return chat_key(event.message.channel_id, event.message.sender)


def update_of(update: RouterUpdate) -> str:
    """The order key of `router.updates`: a contact's resolved profiles one at a time (one per contact in a batch);
    every other report on its own, as they always were (side by side)."""
    if isinstance(update, ProfileResolved):
        return f"contact:{update.contact_id}"
    return f"event:{update.event_id}"


def moving_home(events: Events) -> Callable[[MessageReceived], Awaitable[None]]:
    """A received message from a leftover queue, published again into the partition it belongs to now."""
    return events.publish
