"""Reports on MongoDB: aggregation pipelines over `chats` alone, each starting with a range on one indexed number
(`created_ts` or `closed_ts`; nx-27017 uses an index only for a one-field range, so the queue and operator filters
are a second `$match` stage). Percentiles by nearest rank: a count, then `$sort` / `$skip` / `$limit` (the
stand-in has no `$percentile` or `$median`; tests/integration/test_stand_in.py records it).

Shapes the stand-in runs from its index rather than reading every chat (bench/reports.py measured them): output
fields named `in`/`out` (SQL words), `$cond` in an accumulator, and a `$group` keyed by an expression all make it
read the whole collection, so the counts use plain names, ratings are a `$match` then `$avg`, and days are projected
before they are grouped."""

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
        totals = {"_id": None, "chats": {"$sum": 1}, "incoming": {"$sum": "$messages_in"}}
        for found in await self._aggregate([*opened, {"$group": totals | {"outgoing": {"$sum": "$messages_out"}}}]):
            summary.chats_opened, summary.messages_in = found["chats"], found["incoming"]
            summary.messages_out = found["outgoing"]
        for found in await self._aggregate([*closed, {"$group": {"_id": None, "chats": {"$sum": 1}}}]):
            summary.chats_closed = found["chats"]
        rated = {"$match": {"rating.score": {"$gte": 1}}}
        ratings = {"$group": {"_id": None, "responses": {"$sum": 1}, "score": {"$avg": "$rating.score"}}}
        for found in await self._aggregate([*closed, rated, ratings]):
            summary.csat_responses, summary.csat_average = found["responses"], found["score"]
        summary.first_response = await self._percentiles(opened, "first_response_seconds")
        summary.resolution = await self._percentiles(closed, "resolution_seconds")
        summary.days = await self._days(opened, closed)
        return summary

    async def _percentiles(self, selected: list[Document], field: str) -> Percentiles:
        """p50 and p90 by nearest rank: the values counted, then one sort that skips to the p50 and reads on to the
        p90 (a few numbers each)."""
        having = [*selected, {"$match": {field: {"$gte": 0}}}]
        counted = await self._aggregate([*having, {"$group": {"_id": None, "chats": {"$sum": 1}}}])
        count = counted[0]["chats"] if counted else 0
        if not count:
            return Percentiles()
        p50, p90 = rank(count, 0.5), rank(count, 0.9)
        ranked = [*having, {"$sort": {field: 1}}, {"$skip": p50}, {"$limit": p90 - p50 + 1}, {"$project": {field: 1}}]
        values = [float(doc[field]) for doc in await self._aggregate(ranked)]
        return Percentiles(values[0], values[-1]) if values else Percentiles()

    async def _days(self, opened: list[Document], closed: list[Document]) -> dict[str, tuple[int, int]]:
        days: dict[str, list[int]] = {}
        for index, (stages, field) in enumerate(((opened, "$created_ts"), (closed, "$closed_ts"))):
            # The day projected first: the stand-in reads every chat for a `$group` keyed by an expression.
            day = {"$project": {"day": {"$floor": {"$divide": [field, DAY]}}}}
            for row in await self._aggregate([*stages, day, {"$group": {"_id": "$day", "chats": {"$sum": 1}}}]):
                days.setdefault(day_of(int(row["_id"])), [0, 0])[index] = row["chats"]
        return {day: (counts[0], counts[1]) for day, counts in days.items()}

    async def chats(self, covered: Period) -> AsyncIterator[Chat]:
        query: dict[str, Any] = {"created_ts": {"$gte": covered.start, "$lt": covered.end}}
        async for doc in self._chats.find(query).sort("created_ts", 1):
            yield chat_from_document(doc)
