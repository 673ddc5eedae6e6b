"""The broker connection's socket, with the frames written in one step of the event loop sent as one.

aiormq's writer task writes each queued frame (a publish, an ack) to the socket as it takes it from its queue,
and on an idle socket every write is a send of its own. Many publishes in flight (ingress under load) then cost a
system call each, and as many segments for the broker to read. `CoalescingTransportFactory` (aiormq's extension
point for opening the connection) gives aiormq a stream writer that gathers what is written until the loop's next
turn, or until someone waits for it to drain, and sends it at once. Nothing is reordered, and nothing waits longer
than the loop takes to go round; a publish is still answered only by its broker confirm.
"""

import asyncio
from typing import Any

import aio_pika
import aiormq
from yarl import URL


class CoalescingStreamWriter(asyncio.StreamWriter):
    """A StreamWriter whose writes wait for the loop's next turn, or a drain or close, and then go out as one."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.BaseProtocol,
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._event_loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [bytes(data)]
            self._event_loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def flush(self) -> None:
        """Send what waits now."""
        pending, self._pending = self._pending, None
        if pending and not self.transport.is_closing():
            super().write(pending[0] if len(pending) == 1 else b"".join(pending))

    async def drain(self) -> None:
        self.flush()
        await super().drain()

    def write_eof(self) -> None:
        self.flush()
        super().write_eof()

    def close(self) -> None:
        self.flush()
        super().close()


class CoalescingTransportFactory(aiormq.TransportFactory):
    """aiormq's TCP (or, for amqps, TLS) connection, with a `CoalescingStreamWriter`."""

    async def create(self, url: URL, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        provider: aiormq.SSLContextProvider | None = kwargs.pop("ssl_context_provider", None)
        ssl = await provider.get_context() if provider is not None and url.scheme == "amqps" else None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol, host=url.host or "localhost", port=url.port or 5672, ssl=ssl, **kwargs
            )
        except OSError as exc:  # as aiormq's own factories raise it: the robust connection retries
            raise aiormq.exceptions.AMQPConnectionError(*exc.args) from exc
        return reader, CoalescingStreamWriter(transport, protocol, reader, loop)


class CoalescingRobustConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, opening its (re)connections with `CoalescingTransportFactory`: pass it as
    `connect_robust`'s `connection_class` (aio-pika hands aiormq only the keyword arguments it knows)."""

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        super().__init__(url, loop, **kwargs)
        self.kwargs["transport_factory"] = CoalescingTransportFactory()
