"""Identifiers that sort by creation time, so a chat's messages page by id alone."""

import secrets
import threading
import time

_lock = threading.Lock()
_last = 0


def new_id() -> str:
    """24 hex characters: 16 of nanoseconds (strictly increasing in this process), 8 random."""
    global _last
    with _lock:
        _last = max(time.time_ns(), _last + 1)
        stamp = _last
    return f"{stamp:016x}{secrets.token_hex(4)}"


def lowest_id_at(seconds: float) -> str:
    """The lowest id `new_id()` could answer at `seconds` (epoch): ids below it are older, for time-range queries."""
    return f"{int(seconds * 1_000_000_000):016x}00000000"


def time_of(id_: str) -> float:
    """The epoch seconds a `new_id()` id was made at."""
    return int(id_[:16], 16) / 1_000_000_000
