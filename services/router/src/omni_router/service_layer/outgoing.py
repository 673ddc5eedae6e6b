"""Publishing a stored reply for the dispatcher: operators' replies and what the router tells customers itself."""

from omni_contracts import MessageOutgoing
from omni_router.domain.model import Message
from omni_router.domain.replies import outgoing_files, outgoing_template
from omni_router.domain.views import message_view
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.ports import BrokerUnavailable, Events, Messages, RoutingSettings


async def publish_reply(
    settings: RoutingSettings, messages: Messages, events: Events, integration: IntegrationEvents, message: Message
) -> bool:
    """Hand a stored reply (an operator's, or one the router sends itself: greeting, out-of-hours answer, CSAT
    question) to the dispatcher, and announce it to the webhooks' subscribers (`message.created`, under an id of
    the reply: the outbox's sweep announces it again under the same id); False if the broker did not confirm (it
    stays due for the reply outbox's sweep)."""
    channel = await settings.channel(message.channel_id)
    if channel is None:
        await messages.fail(message.id, "channel deleted")
        return False
    event = MessageOutgoing(
        message_id=message.id,
        chat_id=message.chat_id,
        channel_id=channel.id,
        provider=channel.provider,
        recipient=message.recipient or "",
        text=message.text,
        attachments=outgoing_files(message),
        template=outgoing_template(message),
    )
    try:
        await integration.emit("message.created", {"message": message_view(message)}, key=message.id)
        await events.publish(event)
    except BrokerUnavailable:
        return False
    await messages.mark_published(message.id)
    return True
