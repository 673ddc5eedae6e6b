"""A queue's business hours: when it is open, and when it opens next.

Weekly intervals are wall-clock times in the queue's IANA time zone (`zoneinfo`), end exclusive, so a day of a
DST change keeps its opening hours as people read them on a clock: on Europe/Berlin's spring day 09:00-18:00 is
eight hours long, on its autumn day ten. A time that does not exist on a spring day (02:30) opens at the moment
the clock jumps to (03:00 local); an autumn hour that happens twice is inside an interval both times. Holidays are
whole local days closed.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from omni_router.domain.model import Queue

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far ahead next_opening looks: a week, past every holiday in a row a year may hold.
HORIZON_DAYS = 400
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


def _clock_time(text: str) -> time:
    """ "HH:MM" as a time of day; "24:00" (an interval's end only) is the end of the day."""
    return time.max if text == "24:00" else time.fromisoformat(text)


class BusinessHours(BaseModel):
    """`{"timezone": "Europe/Berlin", "weekly": {"mon": [["09:00", "18:00"]], ...}, "holidays": ["2026-12-25"]}`;
    a day not in `weekly` is closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    timezone: str = Field(min_length=1, max_length=64)
    weekly: dict[Weekday, list[tuple[str, str]]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list, max_length=1000)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @field_validator("weekly")
    @classmethod
    def _intervals(cls, weekly: dict[Weekday, list[tuple[str, str]]]) -> dict[Weekday, list[tuple[str, str]]]:
        for day, intervals in weekly.items():
            if len(intervals) > 24:
                raise ValueError(f"{day}: at most 24 intervals")
            for start, end in intervals:
                for text in (start, end):
                    if not re.match(_HHMM, text):
                        raise ValueError(f"{day}: {text!r} is not a time HH:MM (00:00 to 23:59, or 24:00 as an end)")
                if start == "24:00" or _clock_time(start) >= _clock_time(end):
                    raise ValueError(f"{day}: interval {start}-{end} must start before it ends (end exclusive)")
        return weekly

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Csat(BaseModel):
    """A queue's satisfaction question after a chat closes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = False
    question: str = Field(default="How did we do? Reply with a number from 1 (poor) to 5 (great).", max_length=1000)

    @model_validator(mode="after")
    def _asks_something(self) -> "Csat":
        if self.enabled and not self.question.strip():
            raise ValueError("csat.question must not be empty when csat is enabled")
        return self


def _intervals(hours: BusinessHours, day: date) -> list[tuple[time, time]]:
    if day in hours.holidays:
        return []
    weekday = WEEKDAYS[day.weekday()]
    return sorted((_clock_time(s), _clock_time(e)) for s, e in hours.weekly.get(weekday, []))


def is_open(hours: BusinessHours | None, at: datetime) -> bool:
    """Whether the queue is open at `at` (an aware datetime); no business hours: always."""
    if hours is None:
        return True
    local = at.astimezone(hours.zone)
    now = local.time().replace(tzinfo=None, fold=0)
    return any(start <= now < end for start, end in _intervals(hours, local.date()))


def _moment(day: date, at: time, zone: ZoneInfo) -> datetime:
    """A wall-clock time of a day as an instant; a time a spring change skips is the moment the clock jumps to."""
    if at == time.max:
        return datetime.combine(day + timedelta(days=1), time(), zone)
    wall = datetime.combine(day, at, zone)
    if wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return wall  # an existing time (fold=0: the first of an autumn hour that happens twice)
    # Skipped by a spring change: the instant the clock jumps past it lies between the two readings of the time
    # (with the offsets before and after the change); find it to the second.
    low = wall.replace(fold=1).astimezone(UTC)
    high = wall.astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).time() >= at:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0).astimezone(zone)


def next_opening(hours: BusinessHours | None, at: datetime) -> datetime | None:
    """`at` itself if the queue is open then; else the first moment after it that it is open (aware, in the queue's
    zone); None if it never opens (no intervals, or only holidays ahead)."""
    if is_open(hours, at):
        return at
    assert hours is not None
    zone = hours.zone
    first = at.astimezone(zone).date()
    for offset in range(HORIZON_DAYS):
        day = first + timedelta(days=offset)
        for start, _end in _intervals(hours, day):
            opening = _moment(day, start, zone)
            if opening > at:
                return opening
    return None


def hours_of(queue: Queue | None) -> BusinessHours | None:
    """The queue's business hours as stored (validated when the admin set them)."""
    if queue is None or not queue.business_hours:
        return None
    return BusinessHours.model_validate(queue.business_hours)


@dataclass(frozen=True)
class Opening:
    """How a chat opened now starts: the text its customer is told (None: nothing), and when it may be offered
    (None: at once)."""

    text: str | None
    not_before: float | None


def opening(queue: Queue | None, at: datetime) -> Opening:
    """Inside hours (or with none): the greeting, offered at once. Outside: the out-of-hours answer, and the chat
    waits for the next opening (a queue that never opens again offers it at once rather than never)."""
    hours = hours_of(queue)
    greeting = queue.greeting_text if queue else None
    if is_open(hours, at):
        return Opening(greeting, None)
    opens = next_opening(hours, at)
    return Opening(queue.out_of_hours_text if queue else None, opens.timestamp() if opens else None)
