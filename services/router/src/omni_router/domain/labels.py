"""Labels: names and colours the admin defines, which operators put on chats (`Chat.labels`) and filter by."""

import re
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from omni_router.domain.errors import Unprocessable

# `#rgb` or `#rrggbb`: what the console can put in a style without further checks.
COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
MAX_LABELS_ON_A_CHAT = 20


@dataclass(frozen=True, slots=True)
class Label:
    id: str
    name: str
    color: str
    created_at: datetime | None = None


class LabelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    color: str = Field(description="#rgb or #rrggbb")

    @field_validator("name")
    @classmethod
    def _trimmed(cls, name: str) -> str:
        name = name.strip()
        if not name or any(not char.isprintable() for char in name):
            raise ValueError("a label's name is printable text, not only spaces")
        return name

    @field_validator("color")
    @classmethod
    def _color(cls, color: str) -> str:
        if not COLOR.match(color):
            raise ValueError("color must be #rgb or #rrggbb (hexadecimal)")
        return color.lower()


def chat_labels(wanted: list[str], defined: list[Label]) -> tuple[str, ...]:
    """The labels a chat is to carry, each once, in the order given; Unprocessable naming those not defined."""
    known = {label.name for label in defined}
    unknown = [name for name in dict.fromkeys(wanted) if name not in known]
    if unknown:
        raise Unprocessable("unknown_labels", f"no such labels: {', '.join(unknown)}")
    return tuple(dict.fromkeys(wanted))
