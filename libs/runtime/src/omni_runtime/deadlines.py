"""Read deadlines for uvicorn's HTTP protocols: a request's headers, and then its body, must arrive in time.

uvicorn closes idle keep-alive connections, but not one that sent half its headers (or nothing at all), nor one
whose body stalls: each would hold a connection open for as long as the client likes. The deadlines are timers on
the connection, kept by a subclass of whichever protocol class uvicorn would use (h11's or httptools'); both keep
the request being read in `cycle`, with `more_body` until its body is in and `response_complete` once answered.
"""

import asyncio
from typing import Any

from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string


def protocol_class(http: str, header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's protocol class named by `http` ("auto", "h11", "httptools"), with the read deadlines."""
    base: type[asyncio.Protocol] = import_from_string(HTTP_PROTOCOLS.get(http, http))
    attributes = {"header_timeout": header_timeout, "body_timeout": body_timeout}
    return type(f"{base.__name__}WithDeadlines", (_ReadDeadlines, base), attributes)


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
