"""What an operator does at the desk (the reference's OmnichannelChatService): sign in, go online or offline, list
and read chats, accept, decline, transfer and close them, fetch their files. Replies are in replies.py."""

from dataclasses import dataclass
from typing import Generic, TypeVar

from omni_router.domain.access import (
    Visibility,
    allowed_actions,
    is_offered_to,
    may_see,
    queue_allows,
    token_hash,
    visibility,
)
from omni_router.domain.changes import NEW_ONLY, OPEN
from omni_router.domain.contacts import may_read_history
from omni_router.domain.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from omni_router.domain.model import Chat, FileRef, Message, Operator
from omni_router.service_layer.engine import Engine
from omni_router.service_layer.ports import Chats, FileDownload, Files, Messages, Operators, RoutingSettings

# Conflicting writes are retried against a fresh read this many times before answering 409.
ATTEMPTS = 5


def _changing() -> Conflict:
    return Conflict("chat_changed", "the chat kept changing; try again")


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of a list, newest first, and the cursor of the next one (None: this is the last)."""

    items: list[T]
    next_cursor: str | None


class Desk:
    def __init__(
        self,
        *,
        chats: Chats,
        operators: Operators,
        messages: Messages,
        settings: RoutingSettings,
        files: Files,
        engine: Engine,
    ) -> None:
        self._chats = chats
        self._operators = operators
        self._messages = messages
        self._settings = settings
        self._files = files
        self.engine = engine

    async def operator_for(self, token: str) -> Operator:
        """The operator whose token this is."""
        operator = await self._operators.by_token(token_hash(token))
        if operator is None:
            raise Unauthorized("unauthorized", "unknown token")
        return operator

    async def set_status(self, operator: Operator, status: str) -> None:
        """Online: offered what waits in their queues. Offline: their offers move on, their chats stay or return."""
        await self._operators.set_status(operator.id, status)
        if status == "online":
            await self.engine.operator_online(operator.id)
        elif status == "offline":
            await self.engine.operator_offline([operator.id])

    async def visible_chat(self, chat_id: str, operator: Operator, *, offered_before: bool = False) -> Chat:
        """The chat, or NotFound whether it does not exist or is not this operator's to see (ids don't leak). With
        `offered_before`, also a chat once offered to them (to answer that someone else has it)."""
        chat = await self._chats.get(chat_id)
        if chat is None or not may_see(chat, operator, offered_before=offered_before):
            raise NotFound("chat_not_found", f"no chat {chat_id}")
        return chat

    async def readable_chat(self, chat_id: str, operator: Operator) -> Chat:
        """A chat to read (never to act on): one the operator may see, or an earlier (or other) chat of a contact
        one of whose open chats the operator may see; else NotFound."""
        try:
            return await self.visible_chat(chat_id, operator)
        except NotFound:
            chat = await self._chats.get(chat_id)
            if chat is None or not may_read_history(await self._chats.of_contact(chat.contact_id), operator):
                raise
            return chat

    async def _reread(self, chat_id: str) -> Chat:
        chat = await self._chats.get(chat_id)
        if chat is None:
            raise NotFound("chat_not_found", f"no chat {chat_id}")
        return chat

    async def chats(
        self,
        operator: Operator,
        status: str | None,
        cursor: str | None,
        limit: int,
        *,
        label: str | None = None,
        fence: Visibility | None = None,
    ) -> Page[tuple[Chat, int]]:
        """The chats the operator may see (or those `fence` selects), open ones or those of `status`, with `label`
        if given; newest first, with unread counts."""
        chats = await self._chats.page(fence or visibility(operator), status, cursor, limit + 1, label=label)
        page = chats[:limit]
        unread = await self._messages.unread_counts([c.id for c in page])
        return Page([(c, unread.get(c.id, 0)) for c in page], page[-1].id if len(chats) > limit else None)

    async def chat(self, chat_id: str, operator: Operator) -> tuple[Chat, int]:
        """One chat and its unread count (an earlier chat of a contact the operator sees an open chat of, too)."""
        chat = await self.readable_chat(chat_id, operator)
        unread = await self._messages.unread_counts([chat.id])
        return chat, unread.get(chat.id, 0)

    async def unread(self, operator: Operator) -> dict[str, int]:
        """Unread customer messages per open chat the operator may see."""
        return await self._messages.unread_counts(await self._chats.open_ids(visibility(operator)))

    async def conversation(self, chat: Chat, before: str | None, limit: int) -> Page[Message]:
        """A page of a chat's messages (one `visible_chat` answered) in the order written, ending before `before`."""
        newest_first = await self._messages.page(chat.id, before, limit + 1)
        page = list(reversed(newest_first[:limit]))
        return Page(page, page[0].id if len(newest_first) > limit else None)

    async def actions(self, chat_id: str, operator: Operator) -> list[str]:
        chat = await self.visible_chat(chat_id, operator)
        return allowed_actions(chat, operator, await self._settings.queue(chat.queue_id))

    async def permit(self, chat: Chat, action: str) -> None:
        """Forbidden (`action_not_allowed`) if the chat's queue does not let its operators take `action` (one of
        domain/access.py QUEUE_ACTIONS: the endpoints of notes and labels ask it too)."""
        queue = await self._settings.queue(chat.queue_id)
        if not queue_allows(queue, action):
            where = f"queue {queue.name}" if queue else "queue"
            raise Forbidden("action_not_allowed", f"the {where} does not allow {action}")

    async def accept(self, chat_id: str, operator: Operator) -> Chat:
        """AcceptChat: the first accept wins; the others it was offered to get `chat.revoked` (and a Conflict)."""
        chat = await self.visible_chat(chat_id, operator, offered_before=True)
        await self.permit(chat, "accept")
        me = operator.id
        for _ in range(ATTEMPTS):
            if chat.status == "closed":
                raise Conflict("chat_closed", "the chat is closed")
            if chat.status == "assigned":
                if chat.operator_id == me:
                    return chat
                raise Conflict("chat_taken", "another operator holds this chat")
            if me not in chat.offered_to and not operator.is_supervisor:
                raise Conflict("chat_taken", "the chat is no longer offered to you")
            taken = await self.engine.assign(chat, me, reason="accepted", online_only=False, guard=NEW_ONLY)
            if taken is not None:
                return taken
            chat = await self._reread(chat_id)
        raise _changing()

    async def decline(self, chat_id: str, operator: Operator) -> Chat:
        """Turn down an offer: it moves on to others, and this operator is not offered the chat again."""
        chat = await self.visible_chat(chat_id, operator)
        await self.permit(chat, "decline")
        for _ in range(ATTEMPTS):
            if not is_offered_to(chat, operator.id):
                raise Conflict("not_offered", "the chat is not offered to you")
            await self.engine.move_on(chat, "declined", decline=operator.id)
            chat = await self._reread(chat_id)
            if not is_offered_to(chat, operator.id):
                return chat
        raise _changing()

    async def transfer(self, chat_id: str, operator: Operator, to_operator: str | None, to_queue: str | None) -> Chat:
        """Hand the chat to another operator (who holds it at once, capacity permitting) or queue."""
        chat = await self.visible_chat(chat_id, operator)
        await self.permit(chat, "transfer")
        await self._check_target(to_operator, to_queue)
        for _ in range(ATTEMPTS):
            if "transfer" not in allowed_actions(chat, operator):
                closed = chat.status == "closed"
                raise Conflict("chat_closed" if closed else "not_allowed", "only the holder or a supervisor can")
            if to_operator is not None:
                done = await self._hand_to(chat, to_operator)
            else:
                done = await self.engine.requeue(chat, to_queue or "", reason="transferred")
            chat = await self._reread(chat_id)
            if done is not None:
                return chat
        raise _changing()

    async def _check_target(self, to_operator: str | None, to_queue: str | None) -> None:
        if to_operator is not None and not await self._operators.exists(to_operator):
            raise Invalid("invalid_body", f"unknown operator_id {to_operator}")
        if to_queue is not None and await self._settings.queue(to_queue) is None:
            raise Invalid("invalid_body", f"unknown queue_id {to_queue}")

    async def _hand_to(self, chat: Chat, operator_id: str) -> Chat | None:
        if chat.operator_id == operator_id:
            raise Conflict("not_allowed", "the operator holds the chat already")
        try:
            return await self.engine.assign(chat, operator_id, reason="transferred", online_only=True, guard=OPEN)
        except Conflict as refused:
            raise Conflict("operator_unavailable", refused.detail) from None

    async def close(self, chat_id: str, operator: Operator) -> Chat:
        """CloseActiveChat: whoever it was offered to or held by hears `chat.closed`."""
        chat = await self.visible_chat(chat_id, operator)
        await self.permit(chat, "close")
        for _ in range(ATTEMPTS):
            if "close" not in allowed_actions(chat, operator):
                closed = chat.status == "closed"
                raise Conflict("chat_closed" if closed else "not_allowed", "cannot close")
            done = await self.engine.close(chat, by=operator.id, reason="closed_by_operator")
            if done is not None:
                return done
            chat = await self._reread(chat_id)
        raise _changing()

    async def mark_read(self, chat_id: str, operator: Operator) -> int:
        """The chat's customer messages count as read; answers how many were not."""
        await self.visible_chat(chat_id, operator)
        return await self._messages.mark_read(chat_id)

    async def file(self, file_id: str, operator: Operator) -> tuple[FileRef, FileDownload]:
        """A file's description and bytes, only for an operator who may see a chat it is in, or who uploaded it;
        the same NotFound whether the file does not exist or is someone else's."""
        missing = NotFound("file_not_found", f"no file {file_id}")
        described = await self._visible_file(file_id, operator)
        if described is None:
            upload = await self._files.describe(file_id)
            if upload is None or upload.uploaded_by != operator.id:
                raise missing
            described = upload.as_attachment()
        download = await self._files.open(file_id)
        if download is None:
            raise missing
        return described, download

    async def _visible_file(self, file_id: str, operator: Operator) -> FileRef | None:
        message = await self._messages.with_file(file_id)
        if message is None:
            return None
        try:
            await self.visible_chat(message.chat_id, operator)
        except NotFound:
            return None
        return next(a for a in message.attachments if a.file_id == file_id)
