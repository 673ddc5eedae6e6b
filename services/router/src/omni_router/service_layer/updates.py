"""What other services report back (`router.updates`): deliveries and receipts of replies, resolved profiles,
stored attachments. Each is written, then the chat's audience hears of it, with event ids keyed by the cause so
that a redelivered report notifies again under the same ids. A batch's resolved profiles (one per new customer) are
written together (`apply_batch`); the other reports one by one."""

import asyncio
from collections.abc import Sequence

from omni_contracts import (
    AttachmentStored,
    MessageFailed,
    MessageSent,
    MessageStatusChanged,
    ProfileResolved,
    RouterUpdate,
)
from omni_router.domain.model import Message, statuses_before
from omni_router.domain.notifications import audience
from omni_router.service_layer.indexing import Indexer
from omni_router.service_layer.integration_events import IntegrationEvents
from omni_router.service_layer.notices import Notices
from omni_router.service_layer.ports import Chats, Contacts, Messages, Naming


class Updates:
    def __init__(
        self,
        *,
        chats: Chats,
        contacts: Contacts,
        messages: Messages,
        notices: Notices,
        indexer: Indexer,
        integration: IntegrationEvents,
    ) -> None:
        self._indexer = indexer
        self._integration = integration
        self._chats = chats
        self._contacts = contacts
        self._messages = messages
        self._notices = notices

    async def apply(self, update: RouterUpdate) -> None:
        match update:
            case MessageSent() | MessageFailed():
                await self._delivered(update)
            case MessageStatusChanged():
                await self._receipt(update)
            case ProfileResolved():
                resolved = await self._contacts.resolve(update.contact_id, update.name, update.photo_url)
                if resolved is not None:
                    if resolved.renamed:  # else its chats carry the name already (Resolved)
                        await self._chats.rename_contact(update.contact_id, update.name)
                    # Its entry is put again whole (name and attributes), even unchanged: a crash may have left it
                    # unwritten (a new contact found again on redelivery is not indexed by the inbox).
                    contact = resolved.contact
                    await self._indexer.contact(contact.id, contact.name, contact.attributes, contact.created_at)
            case AttachmentStored():
                await self._attachment(update)

    async def apply_batch(self, updates: Sequence[RouterUpdate]) -> set[int]:
        """`apply` for a batch's resolved profiles (each contact once), in a few commands: the contacts resolved
        together (Contacts.resolve_many), the renamed ones' chats side by side, their search entries together
        (Indexer.contacts). Answers the positions of every other report, left to `apply` one by one. Safe to repeat
        as `apply` is: a failure raises, and the consumer then takes each of the batch to `apply`."""
        profiles = [(n, u) for n, u in enumerate(updates) if isinstance(u, ProfileResolved)]
        left = set(range(len(updates))) - {n for n, _ in profiles}
        if not profiles:
            return left
        resolved = await self._contacts.resolve_many([Naming(u.contact_id, u.name, u.photo_url) for _, u in profiles])
        done = [(update, result) for (_, update), result in zip(profiles, resolved, strict=True) if result is not None]
        renames = await asyncio.gather(
            *(self._chats.rename_contact(u.contact_id, u.name) for u, result in done if result.renamed),
            return_exceptions=True,
        )
        for outcome in renames:
            if isinstance(outcome, BaseException):
                raise outcome
        await self._indexer.contacts([result.contact for _, result in done])
        return left

    async def _tell(self, chat_id: str, data: dict[str, object], key: str, *, announce: bool = True) -> None:
        """The chat's audience hears of it, and (`announce`) the webhooks' subscribers as `message.status`."""
        chat = await self._chats.get(chat_id)
        if chat is None:
            return
        await self._notices.tell("message.status", chat.id, audience(chat), data, key=key)
        if announce:
            await self._integration.emit("message.status", {"chat_id": chat.id, **data}, key=key)

    async def _delivered(self, update: MessageSent | MessageFailed) -> None:
        """The dispatcher has already written the status; the chat's audience hears of it."""
        status = "sent" if isinstance(update, MessageSent) else "failed"
        data: dict[str, object] = {"message_id": update.message_id, "status": status}
        if isinstance(update, MessageFailed):
            data["failure_reason"] = update.reason
        await self._tell(update.chat_id, data, f"{update.message_id}:{status}")

    async def _receipt(self, update: MessageStatusChanged) -> None:
        earlier = statuses_before(update.status)
        if update.watermark is not None:
            # A watermark (Messenger) covers every message sent to the customer up to that moment.
            sent = [s for s in earlier if s != "queued"]
            for message_id in await self._messages.sent_until(
                update.channel_id, update.recipient, sent, update.watermark
            ):
                await self._move(update, sent, message_id=message_id)
        elif update.provider_message_id:
            await self._move(update, earlier, provider_message_id=update.provider_message_id)

    async def _move(
        self,
        update: MessageStatusChanged,
        earlier: list[str],
        *,
        message_id: str | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        failure = None
        if update.status == "failed":
            failure = update.reason or "the messenger reported the message as failed"
        found = {"message_id": message_id, "provider_message_id": provider_message_id}
        message: Message | None = await self._messages.move_status(
            update.channel_id, **found, from_statuses=earlier, to=update.status, failure_reason=failure
        )
        if message is None:
            # Moved already: by this very receipt, redelivered after a crash before its notification went out (or by
            # a duplicate of it): notify again, with the same event ids.
            message = await self._messages.reply_in_status(update.channel_id, update.status, **found)
            if message is None:
                return
        data: dict[str, object] = {"message_id": message.id, "status": update.status}
        if failure is not None:
            data["failure_reason"] = failure
        await self._tell(message.chat_id, data, f"{message.id}:{update.status}")

    async def _attachment(self, update: AttachmentStored) -> None:
        await self._messages.store_attachment(
            update.message_id,
            update.index,
            status=update.status,
            file_id=update.file_id,
            size=update.size,
            content_type=update.content_type,
            failure_reason=update.failure_reason,
        )
        data: dict[str, object] = {
            "message_id": update.message_id,
            "attachment_index": update.index,
            "attachment_status": update.status,
        }
        key = f"{update.message_id}:attachment:{update.index}:{update.status}"
        await self._tell(update.chat_id, data, key, announce=False)
