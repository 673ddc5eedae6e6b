"""The frames PublishPipeline writes are byte for byte those aiormq's basic_publish writes through pamqp."""

import pytest
from aiormq.abc import ChannelFrame, FrameType
from pamqp import commands as spec
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


def pamqp_frames(exchange: str, key: str, body: bytes, headers: FieldTable | None, size: int) -> bytes:
    properties = spec.Basic.Properties(
        content_type="application/json", delivery_mode=2, headers=headers, message_id="m-1"
    )
    chunks = [ContentBody(body[start : start + size]) for start in range(0, len(body), size)]
    frames: list[FrameType | ContentBody] = [
        spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=True),
        ContentHeader(properties=properties, body_size=len(body)),
        *chunks,
    ]
    return ChannelFrame.marshall(channel_number=7, frames=frames).payload


@pytest.mark.parametrize(("exchange", "key", "body", "headers"), CASES)
@pytest.mark.parametrize("size", [131_064, 100])
def test_the_frames_are_pamqps(exchange: str, key: str, body: bytes, headers: FieldTable | None, size: int) -> None:
    ours = encode_publish(
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
    assert ours == pamqp_frames(exchange, key, body, headers, size)


def test_a_routing_key_over_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
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
