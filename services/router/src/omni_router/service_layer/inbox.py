"""A customer's message (`message.received`): its contact, its open chat, the message stored once, then routing
and the requests for the sender's profile and the message's files."""

from omni_contracts import AttachmentRequested, MessageReceived, ProfileRequested, UnifiedMessage
from omni_router.domain.errors import NotFound
from omni_router.domain.hours import opening
from omni_router.domain.model import Channel, Chat, Contact, FileRef, Message, dedupe_key, default_contact_name
from omni_router.domain.views import chat_view, message_view
from omni_router.service_layer.courtesy import Courtesy
from omni_router.service_layer.engine import Engine
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.ports import Chats, Clock, Contacts, Events, Messages, RoutingSettings


class Inbox:
    def __init__(
        self,
        *,
        chats: Chats,
        contacts: Contacts,
        messages: Messages,
        settings: RoutingSettings,
        engine: Engine,
        courtesy: Courtesy,
        events: Events,
        integration: IntegrationEvents,
        clock: Clock,
    ) -> None:
        self._integration = integration
        self._chats = chats
        self._contacts = contacts
        self._messages = messages
        self._settings = settings
        self._engine = engine
        self._courtesy = courtesy
        self._events = events
        self._clock = clock

    async def receive(self, event: MessageReceived) -> None:
        """Safe to repeat: a message stored but not yet routed is routed again; a routed one is left alone."""
        message = event.message
        stored = await self._messages.incoming(dedupe_key(message.channel_id, message.provider_message_id))
        if stored is not None and stored.routed:
            return
        channel = await self._settings.channel(message.channel_id)
        if channel is None:
            raise NotFound("channel_not_found", f"channel {message.channel_id} does not exist")
        contact = await self._contacts.find_or_add(self._new_contact(channel, message))
        chat, stored = await self._store(channel, contact, message, stored)
        await self._announce(chat, stored)
        if self._courtesy.answers_question(chat, stored):  # a rating, stored on its closed chat: nothing to route
            await self._courtesy.record_rating(chat, stored)
            await self._messages.mark_routed(stored.id)
            return
        await self._courtesy.welcome(chat, contact)
        await self._engine.route(chat, stored)
        if contact.profile_status == "pending":
            await self._events.publish(
                ProfileRequested(
                    contact_id=contact.id,
                    channel_id=channel.id,
                    provider=channel.provider,
                    external_id=message.sender,
                    sender_name=message.sender_name,
                )
            )
        for index, attachment in enumerate(message.attachments):
            await self._events.publish(
                AttachmentRequested(
                    message_id=stored.id,
                    chat_id=chat.id,
                    channel_id=channel.id,
                    provider=channel.provider,
                    index=index,
                    attachment=attachment,
                )
            )
        await self._messages.mark_routed(stored.id)

    async def _store(
        self, channel: Channel, contact: Contact, message: UnifiedMessage, stored: Message | None
    ) -> tuple[Chat, Message]:
        """The message stored once, and its chat as routing is to decide on it (its changes are compare-and-set)."""
        current: Chat | None
        if stored is None:
            message_id = self._clock.new_id()
            current = await self._courtesy.rated_chat(contact, message)
            if current is None:
                current = await self._chats.open(await self._new_chat(channel, contact, message))
            stored, new = await self._messages.add_incoming(self._new_message(message_id, current, message))
            if new and current.is_open:
                await self._engine.postpone_completion(current, last_message_at=stored.created_at)
            else:
                current = await self._chats.get(stored.chat_id)
        else:
            current = await self._chats.get(stored.chat_id)
        if current is None:
            raise NotFound("chat_not_found", f"chat {stored.chat_id} vanished")
        return current, stored

    async def _announce(self, chat: Chat, message: Message) -> None:
        """The webhooks' `chat.created` (with the message that opened the chat) and `message.created`, under ids of
        their cause: a redelivery of the message (not yet routed) announces them again under the same ids."""
        if chat.opened_by is not None and chat.opened_by == message.dedupe_key:
            await self._integration.emit("chat.created", {"chat": chat_view(chat)}, key=chat.id)
        await self._integration.emit("message.created", {"message": message_view(message)}, key=message.id)

    def _new_contact(self, channel: Channel, message: UnifiedMessage) -> Contact:
        return Contact(
            id=self._clock.new_id(),
            channel_id=channel.id,
            external_id=message.sender,
            name=message.sender_name or default_contact_name(channel, message.sender),
            profile_status="pending",
            created_at=self._clock.now(),
        )

    async def _new_chat(self, channel: Channel, contact: Contact, message: UnifiedMessage) -> Chat:
        """A chat as it opens: outside its queue's business hours it waits for the next opening; the greeting or
        out-of-hours answer it owes its customer goes with it, under the id it will be stored with."""
        start = opening(await self._settings.queue(channel.queue_id), self._clock.now())
        chat_id = self._clock.new_id()
        return Chat(
            id=chat_id,
            not_before=start.not_before,
            welcome={"id": self._clock.new_id(), "text": start.text} if start.text else None,
            open_key=f"{channel.id}:{contact.id}",
            opened_by=dedupe_key(message.channel_id, message.provider_message_id),
            channel_id=channel.id,
            queue_id=channel.queue_id or "",
            contact_id=contact.id,
            contact_name=contact.name,
            status="new",
            offer_version=0,
            created_at=message.sent_at,
            last_message_at=message.sent_at,
            # `active_at` and `due_at` are set as the first message is stored (postpone_completion).
        )

    def _new_message(self, message_id: str, chat: Chat, message: UnifiedMessage) -> Message:
        return Message(
            id=message_id,
            dedupe_key=dedupe_key(message.channel_id, message.provider_message_id),
            chat_id=chat.id,
            channel_id=message.channel_id,
            direction="incoming",
            type=message.type,
            text=message.text,
            sender=message.sender,
            provider_message_id=message.provider_message_id,
            attachments=tuple(
                FileRef(index=index, file_name=a.file_name, content_type=a.content_type, size=a.size)
                for index, a in enumerate(message.attachments)
            ),
            location=message.location.model_dump() if message.location else None,
            status="received",
            read=False,
            routed=False,
            sent_at=message.sent_at,
            created_at=self._clock.now(),
        )
