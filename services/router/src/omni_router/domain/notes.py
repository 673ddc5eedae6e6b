"""Internal notes: what operators write in a chat for each other, kept in the conversation and never sent."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from omni_router.domain.model import Chat, Message
from omni_router.domain.notifications import involved


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=16_384)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("a note needs text")
        return text


def note(note_id: str, chat: Chat, author_id: str, text: str, at: datetime) -> Message:
    """A note as the conversation stores it: `direction` internal, `type` note, its author as `operator_id`; it
    is never published (no `publish_due`), so no messenger gets it."""
    return Message(
        id=note_id,
        chat_id=chat.id,
        channel_id=chat.channel_id,
        direction="internal",
        type="note",
        text=text,
        status="stored",
        operator_id=author_id,
        published=False,
        created_at=at,
    )


def note_audience(chat: Chat, author_id: str) -> list[str]:
    """Who hears of a note: everyone the chat is offered to or held by, but its author."""
    return [operator_id for operator_id in involved(chat) if operator_id != author_id]
