"""Reports: the period and filters a supervisor asks for, what a summary holds, percentiles by nearest rank, and
chats as CSV rows that a spreadsheet never runs as formulas.

Chats are selected by `created_ts` (opened, messages, first responses) or `closed_ts` (closed, resolution, CSAT)
in the period; both are epoch seconds kept on the chat, and the counts and durations are kept as messages go in and
out, so a report reads chats only.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from omni_router.domain.errors import Invalid

DEFAULT_DAYS = 30
MAX_DAYS = 3660
CSV_COLUMNS = (
    "chat_id",
    "channel",
    "queue",
    "contact",
    "operator",
    "status",
    "created_at",
    "first_response_at",
    "closed_at",
    "messages_in",
    "messages_out",
    "rating",
    "labels",
)
# A cell a spreadsheet would read as a formula (OWASP "CSV injection") starts with one of these.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_moment(text: str, name: str) -> datetime:
    """An ISO 8601 date or date-time; UTC when it names no offset."""
    try:
        moment = datetime.fromisoformat(text) if "T" in text or " " in text else _day(date.fromisoformat(text))
    except ValueError:
        raise Invalid("invalid_query", f"{name}={text!r} is not an ISO 8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    """[start, end) in epoch seconds."""

    start: float
    end: float


def period(start: str | None, end: str | None, now: datetime) -> Period:
    """`from` and `to` as the API takes them; `to` defaults to now, `from` to DEFAULT_DAYS before `to`."""
    until = parse_moment(end, "to") if end else now
    since = parse_moment(start, "from") if start else until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise Invalid("invalid_query", "from must be before to (to is exclusive)")
    if until - since > timedelta(days=MAX_DAYS):
        raise Invalid("invalid_query", f"a report covers at most {MAX_DAYS} days")
    return Period(since.timestamp(), until.timestamp())


@dataclass(frozen=True)
class ReportFilter:
    period: Period
    queue_id: str | None = None
    operator_id: str | None = None


def rank(count: int, fraction: float) -> int:
    """The 0-based position of the `fraction` percentile among `count` sorted values (nearest rank)."""
    return max(0, math.ceil(fraction * count) - 1)


@dataclass(frozen=True)
class Percentiles:
    p50: float | None = None
    p90: float | None = None


@dataclass
class Summary:
    chats_opened: int = 0
    chats_closed: int = 0
    messages_in: int = 0
    messages_out: int = 0
    first_response: Percentiles = Percentiles()
    resolution: Percentiles = Percentiles()
    csat_responses: int = 0
    csat_average: float | None = None
    # Day (UTC, "YYYY-MM-DD") -> (opened, closed).
    days: dict[str, tuple[int, int]] = field(default_factory=dict)


def day_of(day_number: int) -> str:
    """A UTC day counted from the epoch, as its date."""
    return (date(1970, 1, 1) + timedelta(days=day_number)).isoformat()


def summary_view(summary: Summary, covered: Period) -> dict[str, Any]:
    """The summary as the API answers it; `by_day` lists every day of the period, empty ones too."""
    first = math.floor(covered.start / 86400)
    last = math.ceil(covered.end / 86400) - 1
    by_day = []
    for number in range(first, last + 1):
        day = day_of(number)
        opened, closed = summary.days.get(day, (0, 0))
        by_day.append({"date": day, "chats_opened": opened, "chats_closed": closed})
    return {
        "chats_opened": summary.chats_opened,
        "chats_closed": summary.chats_closed,
        "messages_in": summary.messages_in,
        "messages_out": summary.messages_out,
        "first_response_seconds": {"p50": summary.first_response.p50, "p90": summary.first_response.p90},
        "resolution_seconds": {"p50": summary.resolution.p50, "p90": summary.resolution.p90},
        "csat": {
            "responses": summary.csat_responses,
            "average": None if summary.csat_average is None else round(summary.csat_average, 2),
        },
        "by_day": by_day,
    }


def safe_cell(value: Any) -> str:
    """A CSV cell of customer or operator content that a spreadsheet shows as text, never runs: a leading `=`,
    `+`, `-`, `@`, tab or carriage return gets a `'` in front."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
