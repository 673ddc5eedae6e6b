"""What every MongoDB adapter shares: the document type, and stored times read back as times."""

from datetime import UTC, datetime
from typing import Any

from omni_runtime.database import Database, Document

__all__ = ["Database", "Document", "moment", "stored"]


def moment(value: Any) -> datetime | None:
    """A stored time as an aware datetime. The nx-27017 stand-in keeps a datetime written by `$set` as text
    (`2026-11-26 22:51:21.777000`, UTC) where MongoDB keeps a date; both read the same here
    (tests/integration/test_stand_in.py records the difference)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def stored(value: Any) -> Any:
    """A field of a value as a document holds it: sequences as lists, mappings as dicts."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
