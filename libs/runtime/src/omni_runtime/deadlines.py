"""Read deadlines for uvicorn's HTTP protocols: a request's headers, and then its body, must arrive in time.

uvicorn closes idle keep-alive connections, but not one that sent half its headers (or nothing at all), nor one
whose body stalls: each would hold a connection open for as long as the client likes. The deadlines are timers on
the connection, kept by a subclass of whichever protocol class uvicorn would use (h11's or httptools'); both keep
the request being read in `cycle`, with `more_body` until its body is in and `response_complete` once answered.
"""

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string


def protocol_class(http: str, header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's protocol class named by `http` ("auto", "h11", "httptools"), with the read deadlines and each
    answer's writes sent together (`CoalescedWrites`)."""
    base: type[asyncio.Protocol] = import_from_string(HTTP_PROTOCOLS.get(http, http))
    attributes = {"header_timeout": header_timeout, "body_timeout": body_timeout}
    return type(f"{base.__name__}WithDeadlines", (_ReadDeadlines, _CoalescedWrites, base), attributes)


class CoalescedWrites:
    """A transport whose writes made in one step of the event loop go out as one: uvicorn writes an answer's
    head and its body separately, and each write on an idle socket is a send of its own (two segments, two
    system calls, two wake-ups of the client). What is written waits until the loop's next turn (or the
    transport's close, which sends it first); everything else is the transport's own."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _CoalescedWrites(asyncio.Protocol):
    """Gives uvicorn's protocol a `CoalescedWrites` in place of the connection's transport."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalesced = CoalescedWrites(cast(asyncio.Transport, transport), asyncio.get_running_loop())
        super().connection_made(cast(asyncio.Transport, coalesced))


class _ReadDeadlines(asyncio.Protocol):
    """Closes the connection when a request's headers take longer than `header_timeout` seconds from the moment
    the server waits for them (the connection opened, or the previous answer went out), or its body longer than
    `body_timeout` from the end of its headers. The time an answer takes is not limited."""

    header_timeout: float
    body_timeout: float
    # Set by uvicorn's protocol classes.
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """After every step of the protocol: which deadline, if any, runs now."""
        cycle = self.cycle
        if cycle is not None and cycle.more_body:  # reading a body (even one its answer did not wait for)
            self._stop_header_timer()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_timeout, self._expired)
            return
        self._stop_body_timer()
        if cycle is None or cycle.response_complete:  # waiting for the next request's headers
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout, self._expired)
        else:  # the request is in; its answer takes what it takes
            self._stop_header_timer()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _expired(self) -> None:
        self._header_timer = self._body_timer = None
        if not self.transport.is_closing():
            self.transport.close()
