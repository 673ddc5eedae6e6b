"""Reports: periods as the API reads them, nearest-rank percentiles, CSV cells safe from formulas, and the summary
and CSV of a world's chats (on the fakes here, on MongoDB's aggregation in tests/integration)."""

from datetime import UTC, datetime

import pytest

from omni_router.domain.errors import Invalid
from omni_router.domain.reports import ReportFilter, period, rank, safe_cell, summary_view
from tests.support.world import World

NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)  # the fake clock's start


def test_a_period_reads_dates_and_date_times_in_utc_with_to_exclusive() -> None:
    covered = period("2027-01-14", "2027-01-15T06:00:00+02:00", NOW)
    assert covered.start == datetime(2027, 1, 14, tzinfo=UTC).timestamp()
    assert covered.end == datetime(2027, 1, 15, 4, tzinfo=UTC).timestamp()
    assert period(None, None, NOW).end == NOW.timestamp()
    for start, end in (("soon", None), ("2027-01-15", "2027-01-14"), ("2000-01-01", "2027-01-01")):
        with pytest.raises(Invalid):
            period(start, end, NOW)


def test_percentiles_by_nearest_rank() -> None:
    assert [rank(10, 0.5), rank(10, 0.9), rank(1, 0.9), rank(3, 0.5)] == [4, 8, 0, 1]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM", "'@SUM"),
        ("\tx", "'\tx"),
        ("Ann", "Ann"),
        (None, ""),
    ],
)
def test_csv_cells_never_start_a_formula(value: str | None, cell: str) -> None:
    assert safe_cell(value) == cell


async def test_a_summary_counts_times_and_ratings_of_the_period(world: World) -> None:
    queue, channel, (ann,) = await world.team("to_all", [5], csat={"enabled": True, "question": "1-5?"})
    first = await world.write(channel, sender="c1")
    await world.write(channel, sender="c1", text="more")
    world.clock.advance(10)
    await world.reply(first, ann)
    world.clock.advance(50)
    await world.router.desk.close(first.id, await world.fresh(ann))
    await world.write(channel, sender="c1", text="4 fine")
    second = await world.write(channel, sender="c2", sender_name="=cmd()")
    world.clock.advance(30)
    await world.reply(second, ann)
    covered = period("2027-01-15", "2027-01-16", NOW)
    summary = await world.router.supervision.summary(ReportFilter(covered))
    view = summary_view(summary, covered)
    assert (view["chats_opened"], view["chats_closed"], view["messages_in"], view["messages_out"]) == (2, 1, 3, 2)
    assert view["first_response_seconds"]["p50"] == pytest.approx(10, abs=0.1)
    assert view["first_response_seconds"]["p90"] == pytest.approx(30, abs=0.1)
    assert view["resolution_seconds"]["p50"] == pytest.approx(60, abs=0.1)
    assert view["csat"] == {"responses": 1, "average": 4.0}
    assert view["by_day"] == [{"date": "2027-01-15", "chats_opened": 2, "chats_closed": 1}]
    other = await world.router.supervision.summary(ReportFilter(covered, queue_id="nope"))
    assert (other.chats_opened, other.first_response.p50) == (0, None)
    mine = await world.router.supervision.summary(ReportFilter(covered, operator_id=ann.id))
    assert mine.chats_opened == 2 and queue.id

    lines = "".join([c async for c in world.router.supervision.chats_csv(covered)]).split("\r\n")
    assert lines[0] == (
        "chat_id,channel,queue,contact,operator,status,created_at,first_response_at,closed_at,messages_in,"
        "messages_out,rating,labels"
    )
    rows = [line.split(",") for line in lines[1:] if line]
    assert [r[0] for r in rows] == [first.id, second.id]
    assert rows[0][1:6] == ["Shop", "support", first.contact_name, "op0", "closed"] and rows[0][11] == "4"
    assert rows[1][3] == "'=cmd()" and rows[1][9:11] == ["1", "1"]
