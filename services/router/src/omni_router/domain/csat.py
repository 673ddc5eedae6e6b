"""Customer satisfaction: the question a queue asks when a chat closes, and which answer is a rating.

A customer's message within CSAT_WINDOW_SECONDS of the question that starts with a digit 1 to 5 (and not a longer
number) rates the closed chat, the rest of the text its comment; anything else is an ordinary message.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from omni_router.domain.hours import Csat
from omni_router.domain.model import Chat, Queue

CSAT_WINDOW_SECONDS = 24 * 3600.0
COMMENT_MAX = 2000
_RATING = re.compile(r"^\s*([1-5])(?![0-9])(?![.,][0-9])(?:\s*(?:/\s*5|stars?|\*+))?[\s\-:.,!;)/]*(.*)$", re.DOTALL)


def csat_of(queue: Queue | None) -> Csat | None:
    """The queue's question, if it asks one."""
    if queue is None or not queue.csat:
        return None
    csat = Csat.model_validate(queue.csat)
    return csat if csat.enabled else None


def rating_key(chat: Chat) -> str:
    """How a customer's next message finds the chat waiting for their rating: the channel and the contact."""
    return f"{chat.channel_id}:{chat.contact_id}"


@dataclass(frozen=True)
class Rating:
    score: int
    comment: str

    def document(self, at: datetime, *, message_id: str) -> dict[str, Any]:
        """As the chat keeps it, with the id of the customer's message that gave it."""
        return {"score": self.score, "comment": self.comment, "created_at": at, "message_id": message_id}


def parse_rating(text: str | None) -> Rating | None:
    """ "5", "4 - quick and kind", "3/5 ok": a score and a comment; None if the text does not start with 1-5."""
    found = _RATING.match(text or "")
    if found is None:
        return None
    return Rating(int(found.group(1)), found.group(2).strip()[:COMMENT_MAX])
