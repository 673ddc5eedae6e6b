"""What the router tells a customer itself, through the dispatcher like an operator's reply: the greeting or the
out-of-hours answer when a chat opens, the CSAT question when it closes, and the rating the customer answers.

Each is stored under an id decided with the chat's own change (its `welcome`, its `csat_message_id`), so a repeat
after a crash or a redelivery stores it once and the reply outbox publishes what the broker did not confirm.
"""

import logging

from omni_contracts import UnifiedMessage
from omni_router.domain.csat import csat_of, parse_rating
from omni_router.domain.hours import Csat
from omni_router.domain.model import Chat, Contact, Message
from omni_router.domain.views import chat_view
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.outgoing import publish_reply
from omni_router.service_layer.ports import Chats, Clock, Contacts, Events, Messages, RoutingSettings

log = logging.getLogger(__name__)


class Courtesy:
    def __init__(
        self,
        *,
        chats: Chats,
        contacts: Contacts,
        messages: Messages,
        settings: RoutingSettings,
        events: Events,
        integration: IntegrationEvents,
        clock: Clock,
    ) -> None:
        self._integration = integration
        self._chats = chats
        self._contacts = contacts
        self._messages = messages
        self._settings = settings
        self._events = events
        self._clock = clock

    async def welcome(self, chat: Chat, contact: Contact) -> None:
        """The greeting or out-of-hours answer a new chat still owes its customer, once."""
        if not chat.welcome:
            return
        await self._say(chat, contact.external_id, chat.welcome["id"], chat.welcome["text"])
        await self._chats.welcomed(chat.id)

    async def ask_rating(self, chat: Chat, question: str) -> None:
        """The CSAT question of a chat that just closed."""
        if chat.csat_message_id is None:
            return
        contact = await self._contacts.get(chat.contact_id)
        if contact is None:
            await self._chats.asked(chat.id)
            return
        await self._say(chat, contact.external_id, chat.csat_message_id, question)
        await self._chats.asked(chat.id)

    async def ask_due(self, older_than_seconds: float) -> int:
        """The CSAT questions a crash left unsent between a closing and its question (their ids were decided with the
        closing, so one sent meanwhile is not sent twice)."""
        due = await self._chats.questions_due(self._clock.time() - older_than_seconds, 200)
        for chat in due:
            asks = csat_of(await self._settings.queue(chat.queue_id)) or Csat(enabled=True)
            await self.ask_rating(chat, asks.question)
        return len(due)

    async def _say(self, chat: Chat, recipient: str, message_id: str, text: str) -> None:
        message = Message(
            id=message_id,
            chat_id=chat.id,
            channel_id=chat.channel_id,
            direction="outgoing",
            type="text",
            text=text,
            recipient=recipient,
            status="queued",
            published=False,
            publish_due=self._clock.time(),
            created_at=self._clock.now(),
        )
        if await self._messages.add_reply(message):
            await publish_reply(self._settings, self._messages, self._events, self._integration, message)

    async def rated_chat(self, contact: Contact, message: UnifiedMessage) -> Chat | None:
        """The closed chat this message rates: it starts with 1-5, the chat asked within the window, and the customer
        has no open chat on the channel (a new conversation's messages are its own)."""
        if parse_rating(message.text) is None:
            return None
        chat = await self._chats.awaiting_rating(f"{message.channel_id}:{contact.id}")
        if chat is None or (chat.csat_until or 0) < self._clock.time():
            return None
        if await self._chats.find_open(f"{message.channel_id}:{contact.id}") is not None:
            return None
        return chat

    def answers_question(self, chat: Chat, stored: Message) -> bool:
        """Whether `stored` is a customer's answer to the chat's CSAT question: stored on the chat after its question
        (ids sort by creation; only `rated_chat` puts a message there then) with a score in it."""
        if chat.is_open or chat.csat_message_id is None:
            return False
        return stored.id > chat.csat_message_id and parse_rating(stored.text) is not None

    async def record_rating(self, chat: Chat, stored: Message) -> None:
        """The rating in `stored` (a message already stored on the closed chat) recorded on it, once, and announced
        (`rating.created`): again under the same event id when the message is redelivered after a crash."""
        rating = parse_rating(stored.text)
        if rating is None:
            return
        if chat.rating is None:
            await self._chats.rate(chat.id, rating.document(self._clock.now(), message_id=stored.id))
        rated = await self._chats.get(chat.id)
        if rated is not None and rated.rating is not None and rated.rating.get("message_id") == stored.id:
            await self.rating_created(rated, stored.id)

    async def rating_created(self, chat: Chat, message_id: str) -> None:
        """A customer rated a chat (the chat carries it as `rating`): the webhooks' subscribers hear `rating.created`
        `{"chat", "rating"}`, keyed by the rating message's id so a repeat is one event."""
        log.info("chat rated", extra={"chat_id": chat.id, "score": (chat.rating or {}).get("score")})
        view = chat_view(chat)
        await self._integration.emit("rating.created", {"chat": view, "rating": view["rating"]}, key=message_id)
