"""Supervisors' reports: the summary of a period (volumes, first response and resolution percentiles, CSAT, by
day) and every chat of a period as CSV rows, streamed."""

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime

from omni_router.domain.model import Chat
from omni_router.domain.reports import CSV_COLUMNS, Period, ReportFilter, Summary, safe_cell
from omni_router.domain.views import iso
from omni_router.service_layer.ports import Channels, Operators, Queues, Reports

# Rows per chunk of the CSV stream.
CSV_CHUNK = 500


class Supervision:
    def __init__(self, *, reports: Reports, channels: Channels, queues: Queues, operators: Operators) -> None:
        self._reports = reports
        self._channels = channels
        self._queues = queues
        self._operators = operators

    async def summary(self, filters: ReportFilter) -> Summary:
        return await self._reports.summary(filters)

    async def chats_csv(self, covered: Period) -> AsyncIterator[str]:
        """The header, then chunks of rows; names of channels, queues and operators (a few hundred at most) are read
        once, contacts' names are the chats' own. Every cell is safe from spreadsheet formulas."""
        names = await self._names()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        rows = 0
        async for chat in self._reports.chats(covered):
            writer.writerow([safe_cell(cell) for cell in _row(chat, names)])
            rows += 1
            if rows % CSV_CHUNK == 0:
                yield _drain(buffer)
        yield _drain(buffer)

    async def _names(self) -> dict[str, str]:
        limit = 10_000
        found = {c.id: c.name for c in await self._channels.all(limit)}
        found |= {q.id: q.name for q in await self._queues.all(limit)}
        return found | {o.id: o.name for o in await self._operators.all(limit)}


def _row(chat: Chat, names: dict[str, str]) -> list[object]:
    def name(item_id: str | None) -> str:
        return names.get(item_id, item_id or "") if item_id else ""

    rating = chat.rating.get("score") if chat.rating else None
    return [
        chat.id,
        name(chat.channel_id),
        name(chat.queue_id),
        chat.contact_name,
        name(chat.operator_id),
        chat.status,
        _time(chat.created_at),
        _time(chat.first_response_at),
        _time(chat.closed_at),
        chat.messages_in,
        chat.messages_out,
        rating,
        " ".join(getattr(chat, "labels", ()) or ()),
    ]


def _time(moment: datetime | None) -> str:
    return iso(moment) or ""


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
