"""Business hours (domain/hours.py) and CSAT answers (domain/csat.py), on pinned clocks: wall-clock intervals in
the queue's zone across Europe/Berlin's DST changes, holidays, and which customer texts are ratings."""

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from omni_router.domain.csat import Rating, parse_rating
from omni_router.domain.hours import BusinessHours, is_open, next_opening, opening
from omni_router.domain.model import Queue

BERLIN = BusinessHours(
    timezone="Europe/Berlin",
    weekly={d: [("09:00", "18:00")] for d in ("mon", "tue", "wed", "thu", "fri")} | {"sun": [("02:30", "04:00")]},
    holidays=[date(2026, 12, 25)],
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_no_business_hours_is_always_open() -> None:
    assert is_open(None, utc(2026, 12, 25, 3)) and next_opening(None, utc(2026, 1, 1)) == utc(2026, 1, 1)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 3, 27, 7, 59), False),  # Friday 08:59 CET
        (utc(2026, 3, 27, 8, 0), True),  # 09:00 CET: start inclusive
        (utc(2026, 3, 27, 16, 59), True),
        (utc(2026, 3, 27, 17, 0), False),  # 18:00 CET: end exclusive
        (utc(2026, 3, 30, 7, 0), True),  # Monday after the spring change: 09:00 CEST is 07:00 UTC
        (utc(2026, 3, 30, 16, 0), False),  # 18:00 CEST
        (utc(2026, 10, 26, 8, 0), True),  # Monday after the autumn change: 09:00 CET is 08:00 UTC again
        (utc(2026, 10, 26, 7, 30), False),
        (utc(2026, 12, 25, 10, 0), False),  # a Friday, but a holiday
        (utc(2026, 12, 26, 10, 0), False),  # Saturday: not in weekly
    ],
)
def test_open_by_the_wall_clock_of_the_queues_zone(at: datetime, expected: bool) -> None:
    assert is_open(BERLIN, at) is expected


def test_the_next_opening_skips_nights_weekends_and_holidays() -> None:
    assert next_opening(BERLIN, utc(2026, 3, 27, 17, 0)) == utc(2026, 3, 29, 1, 0)  # Sunday 02:30 skipped: 03:00
    assert next_opening(BERLIN, utc(2026, 3, 29, 2, 0)) == utc(2026, 3, 30, 7, 0)  # Monday 09:00 CEST
    assert next_opening(BERLIN, utc(2026, 12, 24, 17, 0)) == utc(2026, 12, 27, 1, 30)  # Sunday 02:30 CET
    inside = utc(2026, 3, 30, 10, 0)
    assert next_opening(BERLIN, inside) == inside


def test_a_spring_day_opens_when_the_clock_jumps_past_a_skipped_time() -> None:
    # 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never shows: the queue opens at the jump.
    assert not is_open(BERLIN, utc(2026, 3, 29, 0, 59, 59))
    assert is_open(BERLIN, utc(2026, 3, 29, 1, 0))  # 03:00 CEST, inside 02:30-04:00
    assert not is_open(BERLIN, utc(2026, 3, 29, 2, 0))  # 04:00 CEST
    opens = next_opening(BERLIN, utc(2026, 3, 29, 0, 30))
    assert opens is not None and opens.astimezone(UTC) == utc(2026, 3, 29, 1, 0)


def test_an_autumn_hour_that_happens_twice_is_inside_both_times() -> None:
    # 2026-10-25 03:00 CEST goes back to 02:00 CET: 02:30 happens at 00:30 and 01:30 UTC.
    assert is_open(BERLIN, utc(2026, 10, 25, 0, 30)) and is_open(BERLIN, utc(2026, 10, 25, 1, 30))
    assert is_open(BERLIN, utc(2026, 10, 25, 2, 59)) and not is_open(BERLIN, utc(2026, 10, 25, 3, 0))
    opens = next_opening(BERLIN, utc(2026, 10, 24, 23, 0))
    assert opens is not None and opens.astimezone(UTC) == utc(2026, 10, 25, 0, 30)  # the first 02:30


def test_hours_that_never_open_have_no_next_opening() -> None:
    assert next_opening(BusinessHours(timezone="UTC"), utc(2026, 1, 1)) is None


def test_a_day_can_end_at_midnight() -> None:
    late = BusinessHours(timezone="UTC", weekly={"fri": [("20:00", "24:00")]})
    assert is_open(late, utc(2026, 3, 27, 23, 59)) and not is_open(late, utc(2026, 3, 28, 0, 0))


@pytest.mark.parametrize(
    ("hours", "reason"),
    [
        ({"timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"timezone": "UTC", "weekly": {"mon": [["9:00", "18:00"]]}}, "not a time HH:MM"),
        ({"timezone": "UTC", "weekly": {"mon": [["18:00", "09:00"]]}}, "must start before it ends"),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00", "09:00"]]}}, "must start before it ends"),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00", "24:30"]]}}, "not a time HH:MM"),
        ({"timezone": "UTC", "weekly": {"monday": [["09:00", "10:00"]]}}, "mon"),
        ({"timezone": "UTC", "holidays": ["2026-13-01"]}, "date"),
    ],
)
def test_bad_business_hours_are_refused_with_a_reason(hours: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BusinessHours.model_validate(hours)
    assert reason in str(refused.value)


def test_a_chat_opening_out_of_hours_is_told_so_and_waits_for_the_opening() -> None:
    queue = Queue(
        id="q",
        business_hours=BERLIN.model_dump(mode="json"),
        greeting_text="Hello!",
        out_of_hours_text="We are closed.",
    )
    inside = opening(queue, utc(2026, 3, 30, 10, 0))
    assert (inside.text, inside.not_before) == ("Hello!", None)
    outside = opening(queue, utc(2026, 3, 27, 20, 0))
    assert (outside.text, outside.not_before) == ("We are closed.", utc(2026, 3, 29, 1, 0).timestamp())
    assert opening(Queue(id="q"), utc(2026, 3, 27, 20, 0)).text is None


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("5", Rating(5, "")),
        ("4 - quick and kind", Rating(4, "quick and kind")),
        ("3/5 ok", Rating(3, "ok")),
        (" 1, slow", Rating(1, "slow")),
        ("5 stars great", Rating(5, "great")),
        ("10 apples", None),
        ("2.5", None),
        ("6", None),
        ("0", None),
        ("hello 5", None),
        (None, None),
    ],
)
def test_a_rating_starts_with_a_digit_from_1_to_5(text: str | None, rating: Rating | None) -> None:
    assert parse_rating(text) == rating


def test_next_opening_never_looks_back() -> None:
    at = utc(2026, 3, 27, 17, 0)
    opens = next_opening(BERLIN, at)
    assert opens is not None and opens > at and is_open(BERLIN, opens)
    assert not is_open(BERLIN, opens.astimezone(UTC) - timedelta(seconds=1))  # not wall-clock arithmetic
