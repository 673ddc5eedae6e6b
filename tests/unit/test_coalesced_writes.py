"""Writes gathered until the loop's next turn: HTTP answers (CoalescedWrites) and the broker connection
(CoalescingStreamWriter) send what one step wrote as one write, in order, and before closing."""

import asyncio
from typing import Any, cast

from omni_runtime.amqp_writes import CoalescingStreamWriter
from omni_runtime.deadlines import CoalescedWrites


class RecordingTransport(asyncio.Transport):
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.events: list[str] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.events.append("close")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1234)}.get(name, default)


async def test_an_answers_head_and_body_go_out_as_one_write_on_the_next_turn() -> None:
    transport = RecordingTransport()
    coalesced = CoalescedWrites(transport, asyncio.get_running_loop())

    coalesced.write(b"HTTP/1.1 200 OK\r\n\r\n")
    coalesced.write(memoryview(b"body"))
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]

    coalesced.write(b"next")
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"next"]


async def test_closing_sends_what_waits_first_and_a_closed_transport_gets_nothing_more() -> None:
    transport = RecordingTransport()
    coalesced = CoalescedWrites(transport, asyncio.get_running_loop())

    coalesced.write(b"last answer")
    coalesced.close()
    assert transport.events == ["write", "close"]
    assert transport.writes == [b"last answer"]

    coalesced.write(b"too late")
    await asyncio.sleep(0)
    assert transport.writes == [b"last answer"]


async def test_everything_else_is_the_transports_own() -> None:
    transport = RecordingTransport()
    coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
    assert coalesced.get_extra_info("peername") == ("127.0.0.1", 1234)
    assert coalesced.is_closing() is False
    transport.closed = True
    assert coalesced.is_closing() is True


def stream_writer(transport: RecordingTransport) -> CoalescingStreamWriter:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    protocol.connection_made(transport)
    return CoalescingStreamWriter(cast(asyncio.WriteTransport, transport), protocol, reader, loop)


async def test_frames_written_in_one_step_reach_the_broker_as_one_write_in_order() -> None:
    transport = RecordingTransport()
    writer = stream_writer(transport)

    for frame in (b"publish-1", b"publish-2", b"ack-7"):
        writer.write(frame)
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"publish-1publish-2ack-7"]


async def test_drain_and_close_send_what_waits_at_once() -> None:
    transport = RecordingTransport()
    writer = stream_writer(transport)

    writer.write(b"close frame")
    await writer.drain()
    assert transport.writes == [b"close frame"]

    writer.write(b"bye")
    writer.close()
    assert transport.events == ["write", "write", "close"]
    assert transport.writes == [b"close frame", b"bye"]
