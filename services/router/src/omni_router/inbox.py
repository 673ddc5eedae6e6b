"""Handling `message.received`: contact, open chat, the message once, then routing and follow-up requests."""

from omni_contracts import AttachmentRequested, MessageReceived, ProfileRequested
from omni_router.offers import Offers
from omni_router.store import ChatStore
from omni_runtime.broker import Broker
from omni_runtime.database import Document
from omni_runtime.errors import PermanentError


async def receive_message(event: MessageReceived, store: ChatStore, offers: Offers, broker: Broker) -> None:
    """Safe to repeat: a message stored but not yet routed is routed again; a routed one is left alone."""
    message = event.message
    stored = await store.find_incoming(message)
    if stored is not None and stored.get("routed"):
        return
    channel = await store.channel(message.channel_id)
    if channel is None:
        raise PermanentError(f"channel {message.channel_id} does not exist")
    contact = await store.contact_for(channel, message)
    current: Document | None
    if stored is None:
        # The chat just read or opened is what routing decides on (its changes are compare-and-set writes).
        current = await store.open_chat_for(channel, contact, message.sent_at)
        stored, new = await store.store_incoming(current, message)
        if not new:
            current = await store.chat(stored["chat_id"])
    else:
        current = await store.chat(stored["chat_id"])
    if current is None:
        raise PermanentError(f"chat {stored['chat_id']} vanished")
    chat = current
    await offers.route(chat, stored)
    if contact.get("profile_status") == "pending":
        await broker.publish_event(
            ProfileRequested(
                contact_id=contact["_id"],
                channel_id=channel.id,
                provider=channel.provider,
                external_id=message.sender,
                sender_name=message.sender_name,
            )
        )
    for index, attachment in enumerate(message.attachments):
        await broker.publish_event(
            AttachmentRequested(
                message_id=stored["_id"],
                chat_id=chat["_id"],
                channel_id=channel.id,
                provider=channel.provider,
                index=index,
                attachment=attachment,
            )
        )
    await store.mark_routed(stored["_id"])
