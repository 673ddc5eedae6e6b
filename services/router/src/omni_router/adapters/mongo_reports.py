"""Reports on MongoDB: aggregation pipelines over `chats` alone, each starting with a range on one indexed number
(`created_ts` or `closed_ts`; nx-27017 uses an index only for a one-field range, so the queue and operator filters
are a second `$match` stage). Percentiles by nearest rank: a count, then `$sort` / `$skip` / `$limit 1` (the
stand-in has no `$percentile` or `$median`; tests/integration/test_stand_in.py records it)."""

from collections.abc import AsyncIterator
from typing import Any

from omni_router.adapters.documents import Database, Document
from omni_router.adapters.mongo_chats import chat_from_document
from omni_router.domain.model import Chat
from omni_router.domain.reports import Percentiles, Period, ReportFilter, Summary, day_of, rank

DAY = 86400


def _selected(field: str, filters: ReportFilter) -> list[Document]:
    """The stages that select the report's chats by `field` (created_ts or closed_ts)."""
    stages: list[Document] = [{"$match": {field: {"$gte": filters.period.start, "$lt": filters.period.end}}}]
    narrower = {
        name: value for name, value in (("queue_id", filters.queue_id), ("operator_id", filters.operator_id)) if value
    }
    if narrower:
        stages.append({"$match": narrower})
    return stages


class MongoReports:
    def __init__(self, db: Database) -> None:
        self._chats = db.chats

    async def _aggregate(self, pipeline: list[Document]) -> list[Document]:
        return await (await self._chats.aggregate(pipeline)).to_list()

    async def summary(self, filters: ReportFilter) -> Summary:
        opened = _selected("created_ts", filters)
        closed = _selected("closed_ts", filters)
        summary = Summary()
        for totals in await self._aggregate(
            [
                *opened,
                {
                    "$group": {
                        "_id": None,
                        "n": {"$sum": 1},
                        "in": {"$sum": "$messages_in"},
                        "out": {"$sum": "$messages_out"},
                    }
                },
            ]
        ):
            summary.chats_opened, summary.messages_in, summary.messages_out = totals["n"], totals["in"], totals["out"]
        for totals in await self._aggregate(
            [
                *closed,
                {
                    "$group": {
                        "_id": None,
                        "n": {"$sum": 1},
                        "rated": {"$sum": {"$cond": [{"$gt": ["$rating.score", 0]}, 1, 0]}},
                        "score": {"$sum": {"$cond": [{"$gt": ["$rating.score", 0]}, "$rating.score", 0]}},
                    }
                },
            ]
        ):
            summary.chats_closed, summary.csat_responses = totals["n"], totals["rated"]
            summary.csat_average = totals["score"] / totals["rated"] if totals["rated"] else None
        summary.first_response = await self._percentiles(opened, "first_response_seconds")
        summary.resolution = await self._percentiles(closed, "resolution_seconds")
        summary.days = await self._days(opened, closed)
        return summary

    async def _percentiles(self, selected: list[Document], field: str) -> Percentiles:
        having = [*selected, {"$match": {field: {"$gte": 0}}}]
        counted = await self._aggregate([*having, {"$group": {"_id": None, "n": {"$sum": 1}}}])
        count = counted[0]["n"] if counted else 0
        if not count:
            return Percentiles()
        values = []
        for fraction in (0.5, 0.9):
            at = await self._aggregate(
                [
                    *having,
                    {"$sort": {field: 1}},
                    {"$skip": rank(count, fraction)},
                    {"$limit": 1},
                    {"$project": {field: 1}},
                ]
            )
            values.append(float(at[0][field]) if at else None)
        return Percentiles(values[0], values[1])

    async def _days(self, opened: list[Document], closed: list[Document]) -> dict[str, tuple[int, int]]:
        days: dict[str, list[int]] = {}
        for index, (stages, field) in enumerate(((opened, "$created_ts"), (closed, "$closed_ts"))):
            by_day = {"$group": {"_id": {"$floor": {"$divide": [field, DAY]}}, "n": {"$sum": 1}}}
            for row in await self._aggregate([*stages, by_day]):
                days.setdefault(day_of(int(row["_id"])), [0, 0])[index] = row["n"]
        return {day: (counts[0], counts[1]) for day, counts in days.items()}

    async def chats(self, covered: Period) -> AsyncIterator[Chat]:
        query: dict[str, Any] = {"created_ts": {"$gte": covered.start, "$lt": covered.end}}
        async for doc in self._chats.find(query).sort("created_ts", 1):
            yield chat_from_document(doc)
