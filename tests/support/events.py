"""Reading an operator's `GET /api/events` stream over real HTTP, as a console would."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx

from omni_cli.tail import SseEvent, SseParser


@dataclass
class Notification:
    id: str | None
    event: str
    body: dict[str, Any]
    raw: str


class EventStream:
    """Messages as a reader task parses them, so that waiting with a timeout never cuts into the HTTP stream."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer
        self._parser = SseParser()
        self._messages: asyncio.Queue[SseEvent | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for line in self.answer.aiter_lines():
                message = self._parser.feed(line)
                if message is not None:
                    self._messages.put_nowait(message)
        finally:
            self._messages.put_nowait(None)

    async def close(self) -> None:
        self._reader.cancel()
        with suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._reader

    async def message(self, timeout: float) -> SseEvent:
        """The next dispatched message (id-only ones included); TimeoutError when none comes in time,
        StopAsyncIteration once the stream has ended."""
        message = await asyncio.wait_for(self._messages.get(), timeout)
        if message is None:
            self._messages.put_nowait(None)
            raise StopAsyncIteration
        return message

    async def next(self, timeout: float = 5.0) -> Notification:
        """The next notification, skipping id-only messages."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.message(max(deadline - loop.time(), 0.001))
            if message.data is not None:
                return Notification(message.id, message.event, json.loads(message.data), message.data)

    async def collect(self, quiet: float) -> list[Notification]:
        """Every notification until none came for `quiet` seconds."""
        found: list[Notification] = []
        while True:
            try:
                found.append(await self.next(quiet))
            except TimeoutError:
                return found

    @property
    def last_id(self) -> str | None:
        return self._parser.last_id


@asynccontextmanager
async def open_stream(
    base_url: str,
    token: str | None,
    *,
    last_event_id: str | None = None,
    in_query: bool = False,
    ticket: str | None = None,
) -> AsyncIterator[EventStream]:
    """An open stream, once the router has sent its opening message (so it is subscribed by then).

    `in_query` passes the token and last event id as `?token=` and `?last_event_id=` (the console's way before
    tickets); `ticket` opens it with `?ticket=` from `POST /api/events/ticket`, the EventSource way.
    """
    headers: dict[str, str] = {}
    params: dict[str, str] = {"ticket": ticket} if ticket else {}
    if in_query:
        params.update({"token": token or ""}, **({"last_event_id": last_event_id} if last_event_id else {}))
    else:
        headers.update({"Authorization": f"Bearer {token}"} if token else {})
        headers.update({"Last-Event-ID": last_event_id} if last_event_id else {})
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10.0, read=30.0)) as client,
        client.stream("GET", "/api/events", headers=headers, params=params) as answer,
    ):
        assert answer.status_code == 200, (answer.status_code, await answer.aread())
        assert answer.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(answer)
        try:
            opening = await stream.message(5.0)
            assert opening.data is None and opening.id is not None
            yield stream
        finally:
            await stream.close()
