"""The frames PublishPipeline writes: read back with pamqp, they are the publish asked for, its body in chunks."""

import pytest
from pamqp import commands as spec
from pamqp import frame
from pamqp.body import ContentBody
from pamqp.common import FieldTable
from pamqp.header import ContentHeader

from omni_runtime.pipeline import encode_publish

CASES: list[tuple[str, str, bytes, FieldTable | None]] = [
    ("omni.events", "message.received.3", b'{"kind": "message.received"}', {}),
    ("omni.events", "message.status", b"{}", {"x-attempt": 2, "x-cause": "timeout", "x-nested": {"a": [1, "b"]}}),
    ("", "router.received.0", b"", {}),
    ("omni.operators", "operator.\u00e9", "\u00e9".encode() * 300, {"x-n": 1.5}),
    ("omni.events", "k", bytes(range(256)) * 10, None),
]


def read_frames(data: bytes) -> list[tuple[int, object]]:
    """Every frame in `data`, as (channel, frame)."""
    frames: list[tuple[int, object]] = []
    while data:
        consumed, channel, value = frame.unmarshal(data)
        frames.append((channel, value))
        data = data[consumed:]
    return frames


@pytest.mark.parametrize(("exchange", "key", "body", "headers"), CASES)
@pytest.mark.parametrize("size", [131_064, 100])
def test_the_frames_read_back_as_the_publish(
    exchange: str, key: str, body: bytes, headers: FieldTable | None, size: int
) -> None:
    encoded = encode_publish(
        7,
        exchange,
        key,
        body,
        content_type="application/json",
        delivery_mode=2,
        message_id="m-1",
        headers=headers,
        max_content_size=size,
    )
    frames = read_frames(encoded)
    assert {channel for channel, _ in frames} == {7}
    method, header, *chunks = (value for _, value in frames)
    assert isinstance(method, spec.Basic.Publish)
    assert (method.exchange, method.routing_key, method.mandatory) == (exchange, key, True)
    assert isinstance(header, ContentHeader)
    assert header.body_size == len(body)
    properties = header.properties
    assert (properties.content_type, properties.delivery_mode, properties.message_id) == ("application/json", 2, "m-1")
    assert properties.headers == headers
    assert all(isinstance(chunk, ContentBody) and 0 < len(chunk.value) <= size for chunk in chunks)
    assert b"".join(chunk.value for chunk in chunks if isinstance(chunk, ContentBody)) == body
    assert len(chunks) == -(-len(body) // size)


def test_a_routing_key_over_255_bytes_is_refused() -> None:
    with pytest.raises((TypeError, ValueError), match="255"):
        encode_publish(
            1,
            "omni.events",
            "k" * 256,
            b"{}",
            content_type="application/json",
            delivery_mode=2,
            message_id="m",
            headers={},
            max_content_size=1000,
        )
