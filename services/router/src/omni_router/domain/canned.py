"""Canned responses: texts an operator inserts with a shortcut, global, of a queue, or an operator's own, and the
placeholders filled for a chat when one is used."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Scope = Literal["global", "queue", "personal"]
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class CannedResponse:
    """`queue_id` set: the queue's operators may use it; `operator_id` set: that operator's own; neither: global."""

    id: str
    shortcut: str
    text: str
    queue_id: str | None = None
    operator_id: str | None = None
    created_at: datetime | None = None

    @property
    def scope(self) -> Scope:
        if self.operator_id is not None:
            return "personal"
        return "queue" if self.queue_id is not None else "global"


class PersonalResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shortcut: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=4096)

    @field_validator("shortcut")
    @classmethod
    def _one_word(cls, shortcut: str) -> str:
        shortcut = shortcut.strip().lstrip("/")
        if not shortcut or any(char.isspace() or not char.isprintable() for char in shortcut):
            raise ValueError("a shortcut is one word (no spaces)")
        return shortcut

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text must not be blank")
        return text


class SharedResponse(PersonalResponse):
    """The admin's: global (`queue_id` null) or for one queue's operators."""

    queue_id: str | None = None


def usable_by(response: CannedResponse, operator_id: str, queue_ids: set[str]) -> bool:
    """Global, of one of the operator's queues, or their own."""
    if response.operator_id is not None:
        return response.operator_id == operator_id
    return response.queue_id is None or response.queue_id in queue_ids


def matches(response: CannedResponse, q: str) -> bool:
    """`q` (any case) in the shortcut or the text; an empty `q` matches everything."""
    needle = q.strip().lstrip("/").casefold()
    return needle in response.shortcut.casefold() or needle in response.text.casefold()


def ordered(responses: list[CannedResponse], q: str) -> list[CannedResponse]:
    """Those matching `q`: shortcuts that start with it first, then by shortcut."""
    needle = q.strip().lstrip("/").casefold()
    found = [r for r in responses if matches(r, q)]
    return sorted(found, key=lambda r: (not r.shortcut.casefold().startswith(needle), r.shortcut.casefold(), r.id))


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill the placeholders `values` knows (`contact.name`, ...); unknown ones stay as written. One pass: a value
    that itself looks like a placeholder (a customer named "{{operator.name}}") is inserted as plain text."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
