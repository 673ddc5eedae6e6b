"""A customer's message (`message.received`): its contact, its open chat, the message stored once, then routing
and the requests for the sender's profile and the message's files."""

from omni_contracts import AttachmentRequested, MessageReceived, ProfileRequested, UnifiedMessage
from omni_router.domain.errors import NotFound
from omni_router.domain.model import Channel, Chat, Contact, FileRef, Message, dedupe_key, default_contact_name
from omni_router.service_layer.engine import Engine
from omni_router.service_layer.indexing import Indexer
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
        events: Events,
        indexer: Indexer,
        clock: Clock,
    ) -> None:
        self._indexer = indexer
        self._chats = chats
        self._contacts = contacts
        self._messages = messages
        self._settings = settings
        self._engine = engine
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
        candidate = self._new_contact(channel, message)
        contact = await self._contacts.find_or_add(candidate)
        chat, stored = await self._store(channel, contact, message, stored)
        await self._engine.route(chat, stored)
        await self._indexer.message(stored, contact.id)  # before `routed`: a redelivery indexes it again
        if contact.id == candidate.id:  # added now; a resolved profile indexes it again (Updates)
            await self._indexer.contact(contact.id, contact.name, at=contact.created_at)
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
            current = await self._chats.open(self._new_chat(channel, contact, message))
            stored, new = await self._messages.add_incoming(self._new_message(current, message))
            if new:
                await self._engine.postpone_completion(current, last_message_at=stored.created_at)
            else:
                current = await self._chats.get(stored.chat_id)
        else:
            current = await self._chats.get(stored.chat_id)
        if current is None:
            raise NotFound("chat_not_found", f"chat {stored.chat_id} vanished")
        return current, stored

    def _new_contact(self, channel: Channel, message: UnifiedMessage) -> Contact:
        return Contact(
            id=self._clock.new_id(),
            channel_id=channel.id,
            external_id=message.sender,
            name=message.sender_name or default_contact_name(channel, message.sender),
            profile_status="pending",
            created_at=self._clock.now(),
        )

    def _new_chat(self, channel: Channel, contact: Contact, message: UnifiedMessage) -> Chat:
        return Chat(
            id=self._clock.new_id(),
            open_key=f"{channel.id}:{contact.id}",
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

    def _new_message(self, chat: Chat, message: UnifiedMessage) -> Message:
        return Message(
            id=self._clock.new_id(),
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
