"""The operator's workplace beyond replying (API.md, "Operator workplace"): internal notes, labels on chats,
canned responses with their placeholders filled, and search, each fenced like the chats themselves."""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pydantic import ValidationError

from omni_router.domain.access import Visibility
from omni_router.domain.canned import CannedResponse, PersonalResponse, SharedResponse, ordered, render, usable_by
from omni_router.domain.errors import Conflict, Forbidden, Invalid, InvalidBody, NotFound
from omni_router.domain.labels import Label, LabelSettings, chat_labels
from omni_router.domain.model import Chat, Message, Operator
from omni_router.domain.notes import note, note_audience
from omni_router.domain.search import SearchEntry, query_words
from omni_router.domain.views import note_view
from omni_router.service_layer.desk import Desk, Page
from omni_router.service_layer.indexing import Indexer
from omni_router.service_layer.notices import Notices
from omni_router.service_layer.ports import (
    BrokerUnavailable,
    CannedResponses,
    Chats,
    Clock,
    Contacts,
    Labels,
    Messages,
    Queues,
    RoutingSettings,
    SearchIndex,
)

log = logging.getLogger(__name__)
M = TypeVar("M", SharedResponse, PersonalResponse)

# A search reads the index in batches, and at most SEARCH_SCAN entries per request: a common word an operator sees
# few of answers a short page (with a cursor to go on) rather than reading the whole index.
SEARCH_BATCH = 200
SEARCH_SCAN = 2_000


@dataclass(frozen=True)
class Hit:
    entry: SearchEntry
    chat_id: str | None


class Workplace:
    def __init__(
        self,
        *,
        desk: Desk,
        chats: Chats,
        messages: Messages,
        contacts: Contacts,
        queues: Queues,
        settings: RoutingSettings,
        labels: Labels,
        canned: CannedResponses,
        search: SearchIndex,
        indexer: Indexer,
        notices: Notices,
        clock: Clock,
    ) -> None:
        self._notices = notices
        self._desk = desk
        self._chats = chats
        self._messages = messages
        self._contacts = contacts
        self._queues = queues
        self._settings = settings
        self._labels = labels
        self._canned = canned
        self._search = search
        self._indexer = indexer
        self._clock = clock

    # Lists -------------------------------------------------------------------------------------------------------

    async def chats(
        self,
        operator: Operator,
        status: str | None,
        cursor: str | None,
        limit: int,
        *,
        label: str | None = None,
        of_operator: str | None = None,
    ) -> Page[tuple[Chat, int]]:
        """GetChats: the chats the operator may see, or (`of_operator`, supervisors only) those another operator
        was offered or holds; with `label`, those carrying it. Newest first, with unread counts."""
        fence = None
        if of_operator is not None:
            if not operator.is_supervisor:
                raise Forbidden("forbidden", "only supervisors list another operator's chats")
            fence = Visibility(of_operator)
        if label is not None:
            await self.check_label(label)
        return await self._desk.chats(operator, status, cursor, limit, label=label, fence=fence)

    # Notes -------------------------------------------------------------------------------------------------------

    async def add_note(self, chat_id: str, operator: Operator, text: str) -> Message:
        """Store the note in the conversation; the others the chat is offered to or held by hear `note.new`."""
        chat = await self._desk.visible_chat(chat_id, operator)
        await self._desk.permit(chat, "note")
        written = note(self._clock.new_id(), chat, operator.id, text, self._clock.now())
        await self._messages.add_note(written)
        await self._indexer.message(written, chat.contact_id)
        try:
            await self._notices.tell(
                "note.new", chat.id, note_audience(chat, operator.id), {"note": note_view(written)}
            )
        except BrokerUnavailable:
            # Recorded in the notification log before publishing (the live streams show it) and in the conversation.
            log.warning("note.new not published to every operator queue", extra={"chat_id": chat.id})
        return written

    # Labels ------------------------------------------------------------------------------------------------------

    async def create_label(self, body: LabelSettings) -> Label:
        label = Label(self._clock.new_id(), body.name, body.color, self._clock.now())
        if not await self._labels.add(label):
            raise Conflict("label_exists", f"a label named {body.name!r} exists")
        return label

    async def labels(self) -> list[Label]:
        return await self._labels.all()

    async def delete_label(self, label_id: str) -> None:
        """The label goes, and with it from every chat that carried it."""
        removed = await self._labels.delete(label_id)
        if removed is None:
            raise NotFound("not_found", f"no label {label_id}")
        await self._chats.drop_label(removed.name)

    async def label_chat(self, chat_id: str, operator: Operator, names: list[str]) -> Chat:
        """Replace the chat's labels with `names` (each one the admin defined)."""
        chat = await self._desk.visible_chat(chat_id, operator)
        await self._desk.permit(chat, "label")
        labels = chat_labels(names, await self._labels.all())
        labelled = await self._chats.set_labels(chat.id, labels)
        if labelled is None:
            raise NotFound("chat_not_found", f"no chat {chat_id}")
        return labelled

    async def check_label(self, name: str) -> None:
        """A filter by a label nobody defined is a mistake worth saying (422), not an empty list."""
        chat_labels([name], await self._labels.all())

    # Canned responses: the admin's ------------------------------------------------------------------------------

    async def create_shared(self, body: SharedResponse) -> CannedResponse:
        await self._check_queue(body.queue_id)
        response = CannedResponse(
            self._clock.new_id(), body.shortcut, body.text, queue_id=body.queue_id, created_at=self._clock.now()
        )
        await self._canned.add(response)
        return response

    async def shared(self, queue_id: str | None = None) -> list[CannedResponse]:
        found = await self._canned.shared()
        return [r for r in found if queue_id is None or r.queue_id == queue_id]

    async def shared_one(self, response_id: str) -> CannedResponse:
        response = await self._canned.get(response_id)
        if response is None or response.scope == "personal":
            raise NotFound("not_found", f"no canned response {response_id}")
        return response

    async def change_shared(self, response_id: str, changes: Mapping[str, Any]) -> CannedResponse:
        """A PATCH: checked whole as creation checks it; refused, nothing changes."""
        response = await self.shared_one(response_id)
        current = {"shortcut": response.shortcut, "text": response.text, "queue_id": response.queue_id}
        body = _validated(SharedResponse, {**current, **changes})
        await self._check_queue(body.queue_id)
        changed = replace(response, shortcut=body.shortcut, text=body.text, queue_id=body.queue_id)
        await self._canned.save(changed)
        return changed

    async def delete_shared(self, response_id: str) -> None:
        await self._canned.delete((await self.shared_one(response_id)).id)

    async def _check_queue(self, queue_id: str | None) -> None:
        if queue_id is not None and await self._queues.get(queue_id) is None:
            raise Invalid("invalid_body", f"unknown queue_id {queue_id}")

    # Canned responses: the operator's ---------------------------------------------------------------------------

    async def _queue_ids(self, operator: Operator) -> set[str]:
        return {queue.id for queue in await self._queues.of_operator(operator.id)}

    async def usable(self, operator: Operator, q: str) -> list[CannedResponse]:
        """Global, of the operator's queues, their own; those matching `q`, best first."""
        queue_ids = await self._queue_ids(operator)
        return ordered(await self._canned.usable(operator.id, sorted(queue_ids)), q)

    async def create_personal(self, operator: Operator, body: PersonalResponse) -> CannedResponse:
        response = CannedResponse(
            self._clock.new_id(), body.shortcut, body.text, operator_id=operator.id, created_at=self._clock.now()
        )
        await self._canned.add(response)
        return response

    async def _own(self, operator: Operator, response_id: str) -> CannedResponse:
        """Another operator's: 404 (ids don't leak); a global or queue one: 403 (the admin's to change)."""
        response = await self._canned.get(response_id)
        if response is None or (response.operator_id not in (None, operator.id)):
            raise NotFound("not_found", f"no canned response {response_id}")
        if response.operator_id is None:
            raise Forbidden("not_personal", "global and queue responses are changed through the admin API")
        return response

    async def change_personal(self, operator: Operator, response_id: str, changes: Mapping[str, Any]) -> CannedResponse:
        response = await self._own(operator, response_id)
        body = _validated(PersonalResponse, {"shortcut": response.shortcut, "text": response.text, **changes})
        changed = replace(response, shortcut=body.shortcut, text=body.text)
        await self._canned.save(changed)
        return changed

    async def delete_personal(self, operator: Operator, response_id: str) -> None:
        await self._canned.delete((await self._own(operator, response_id)).id)

    async def rendered(self, chat_id: str, operator: Operator, response_id: str) -> str:
        """The response's text with `{{contact.name}}`, `{{operator.name}}`, `{{channel.name}}` of the chat."""
        chat = await self._desk.visible_chat(chat_id, operator)
        response = await self._canned.get(response_id)
        if response is None or not usable_by(response, operator.id, await self._queue_ids(operator)):
            raise NotFound("not_found", f"no canned response {response_id}")
        contact = await self._contacts.get(chat.contact_id)
        channel = await self._settings.channel(chat.channel_id)
        values = {
            "contact.name": (contact.name if contact else None) or chat.contact_name or "",
            "operator.name": operator.name,
            "channel.name": channel.name if channel else "",
        }
        return render(response.text, values)

    # Search ------------------------------------------------------------------------------------------------------

    async def search(self, operator: Operator, q: str, cursor: str | None, limit: int) -> Page[Hit]:
        """Entries holding every word of `q` that the operator may see, newest first. The index is read by the
        longest word, at most SEARCH_SCAN entries a request: a short page with a cursor means "go on"."""
        wanted = query_words(q)
        if not wanted:
            raise Invalid("invalid_query", "q must hold at least one word")
        fence = None if operator.is_supervisor else await self._chats.seen_by(operator.id)
        page = await self._scan(wanted, fence, cursor, limit)
        texts = await self._search.texts([hit.entry for hit in page.items])
        shown = [Hit(replace(h.entry, text=texts.get(h.entry.id, "")), h.chat_id) for h in page.items]
        return Page(shown, page.next_cursor)

    async def _scan(self, wanted: list[str], fence: dict[str, str] | None, cursor: str | None, limit: int) -> Page[Hit]:
        newest_chat = _newest_chat_per_contact(fence or {})
        hits: list[Hit] = []
        scanned, before = 0, cursor
        while scanned < SEARCH_SCAN:
            batch = await self._search.with_word(wanted[0], before, SEARCH_BATCH)
            for entry in batch:
                scanned += 1
                before = entry.id
                hit = await self._fenced(entry, fence, newest_chat) if entry.has_all(wanted) else None
                if hit is not None:
                    hits.append(hit)
                    if len(hits) > limit:
                        return Page(hits[:limit], hits[limit - 1].entry.id)
            if len(batch) < SEARCH_BATCH:
                return Page(hits, None)
        return Page(hits, before)

    async def _fenced(
        self, entry: SearchEntry, fence: dict[str, str] | None, newest_chat: dict[str, str]
    ) -> Hit | None:
        """The hit with the chat it shows, if the searcher may see it (a contact: through one of its chats)."""
        if entry.kind == "message":
            return Hit(entry, entry.chat_id) if fence is None or entry.chat_id in fence else None
        if fence is None:
            latest = await self._chats.latest_of_contact(entry.contact_id)
            return Hit(entry, latest.id if latest else None)
        chat_id = newest_chat.get(entry.contact_id)
        return Hit(entry, chat_id) if chat_id else None


def _newest_chat_per_contact(chats: Mapping[str, str]) -> dict[str, str]:
    newest: dict[str, str] = {}
    for chat_id, contact_id in chats.items():
        if chat_id > newest.get(contact_id, ""):
            newest[contact_id] = chat_id
    return newest


def _validated(model: type[M], data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        raise InvalidBody(error) from None
