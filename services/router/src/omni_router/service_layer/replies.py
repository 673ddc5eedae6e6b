"""Operators' replies: stored once (per Idempotency-Key too), then published for the dispatcher; a reply the
broker could not take at once waits in the reply outbox (`publish_due` on the message) for its sweep.

Idempotency-Key: the first request with a key claims it (a unique id of operator and key) with a fingerprint of
the request and the id its reply will be stored under. Every request with the key then sends under that id, so
the messages' unique id stores the reply once however many repeats race, and a repeat finds it stored. A key that
comes with another request (other chat, other text) is refused. Claims expire 24 h after the key's first use
(their storage removes them; one found past its time counts as gone, so the boundary is exact).
"""

import logging
from collections.abc import Mapping
from typing import Any

from omni_contracts import Attachment, Template
from omni_router.domain.errors import Conflict, Unprocessable
from omni_router.domain.model import Chat, Message, Operator
from omni_router.domain.replies import (
    KeyClaim,
    fingerprint,
    given_files,
    refusal,
    reply,
)
from omni_router.service_layer.desk import Desk
from omni_router.service_layer.indexing import Indexer
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.outgoing import publish_reply
from omni_router.service_layer.ports import (
    Chats,
    Clock,
    Contacts,
    Events,
    IdempotencyKeys,
    Messages,
    Messengers,
    RoutingSettings,
)
from omni_router.service_layer.uploads import Uploads

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
CLAIM_TRIES = 5


async def claim_key(keys: IdempotencyKeys, clock: Clock, operator_id: str, key: str, request_fingerprint: str) -> str:
    """The id of the reply this operator's key stands for: made now on the key's first use, else the one made then.
    Unprocessable when the key was first used with another request."""
    claim_id = f"{operator_id}:{key}"
    for _ in range(CLAIM_TRIES):
        now = clock.now()
        mine = KeyClaim(claim_id, operator_id, request_fingerprint, clock.new_id(), now)
        earlier = await keys.claim(mine)
        if earlier is mine:
            return mine.message_id
        if earlier is None:
            continue  # expired and removed since it was found taken: claim it afresh
        if earlier.expired(now):
            await keys.forget(earlier)
            continue
        if earlier.fingerprint != request_fingerprint:
            raise Unprocessable(
                "idempotency_key_reused",
                f"this {HEADER} came with another request (another chat or body) within the last 24 h; "
                "use a new key for a new reply",
            )
        return earlier.message_id
    raise Conflict("idempotency_key_busy", f"this {HEADER} kept changing hands; try again")


class Replies:
    def __init__(
        self,
        *,
        desk: Desk,
        chats: Chats,
        messages: Messages,
        contacts: Contacts,
        settings: RoutingSettings,
        keys: IdempotencyKeys,
        events: Events,
        indexer: Indexer,
        integration: IntegrationEvents,
        clock: Clock,
        uploads: Uploads,
        messengers: Messengers,
    ) -> None:
        self._indexer = indexer
        self._uploads = uploads
        self._messengers = messengers
        self._integration = integration
        self._desk = desk
        self._chats = chats
        self._messages = messages
        self._contacts = contacts
        self._settings = settings
        self._keys = keys
        self._events = events
        self._clock = clock

    async def send(
        self,
        chat_id: str,
        operator: Operator,
        text: str | None,
        files: list[Attachment],
        *,
        template: Template | None = None,
        key: str | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> tuple[Message, bool]:
        """Store the reply, then publish it; if the broker is down, the reply outbox's sweep publishes it later.

        With an Idempotency-Key (`key`, `request` being the parsed body it came with), a reply already stored under
        it is answered as it is and neither stored nor published again; the second answer says whether that was so
        (a repeat). Racing repeats are told apart by the messages' unique id: one stores and publishes, the others
        find it.

        Files named by `file_id` must be this operator's uploads (or of a chat it sees): else 422 `file_not_found`.
        The messenger's reply window decides first (422 `template_required`, `reply_window_closed` or
        `templates_unsupported`, with `window_ends_at`), before an offered chat is accepted by the reply.
        """
        message_id = None
        if key is not None:
            message_id = await claim_key(self._keys, self._clock, operator.id, key, fingerprint(chat_id, request))
            earlier = await self._messages.get(message_id)
            if earlier is not None:
                return earlier, True
        chat = await self._desk.visible_chat(chat_id, operator)
        await self._check_window(chat, "template" if template is not None else "text")
        ours = await self._uploads.attachments([f.file_id for f in files if f.file_id is not None], operator)
        attached = ours + given_files([f for f in files if f.file_id is None])
        chat = await self._answerable(chat_id, operator)
        contact = await self._contacts.get(chat.contact_id)
        if contact is None:
            raise Conflict("contact_missing", "the chat's contact no longer exists")
        at, now = self._clock.now(), self._clock.time()
        new_id = message_id or self._clock.new_id()
        message = reply(new_id, chat, contact, operator.id, text, attached, at=at, now=now, template=template)
        if not await self._messages.add_reply(message):
            return await self._stored_under(message.id, message_id), True
        await self._desk.engine.postpone_completion(chat)
        waited = (at - chat.created_at).total_seconds() if chat.created_at else None
        await self._chats.replied(chat.id, at, None if waited is None else max(0.0, waited))
        await self.publish(message)
        await self._indexer.message(message, chat.contact_id)
        return message, False

    async def _check_window(self, chat: Chat, kind: str) -> None:
        """Refuse a reply the messenger's window would refuse (the dispatcher decides again at send time)."""
        channel = await self._settings.channel(chat.channel_id)
        if channel is None:
            return  # the reply fails as `channel deleted` when published
        last = await self._messages.last_from_customer(chat.id)
        wrote_at = None if last is None else last.sent_at or last.created_at
        refused = refusal(self._messengers.reply_window(channel, wrote_at, self._clock.now(), kind))
        if refused is not None:
            raise refused

    async def _answerable(self, chat_id: str, operator: Operator) -> Chat:
        """The chat, if the operator may reply in it now; an offer of it is accepted by replying."""
        chat = await self._desk.visible_chat(chat_id, operator)
        await self._desk.permit(chat, "reply")
        if chat.status == "closed":
            raise Conflict("chat_closed", "the chat is closed")
        if chat.operator_id not in (None, operator.id) and not operator.is_supervisor:
            raise Conflict("chat_taken", "another operator holds this chat")
        if chat.status == "new":
            chat = await self._desk.accept(chat_id, operator)
        return chat

    async def _stored_under(self, reply_id: str, key_id: str | None) -> Message:
        """The reply a racing repeat of the same key stored first."""
        earlier = await self._messages.get(reply_id)
        if key_id is None or earlier is None:
            raise RuntimeError(f"reply id {reply_id} is taken")
        return earlier

    async def publish(self, message: Message) -> bool:
        """Hand the reply to the dispatcher and announce it to the webhooks' subscribers (`message.created`); False if
        the broker did not confirm (it stays due for the sweep)."""
        return await publish_reply(self._settings, self._messages, self._events, self._integration, message)

    async def publish_due(self, older_than_seconds: float) -> int:
        """Publish the replies due more than `older_than_seconds` ago and not published yet, oldest first."""
        published = 0
        for message in await self._messages.publish_due(self._clock.time() - older_than_seconds):
            if await self.publish(message):
                published += 1
        return published
