"""Confirmed publishes, pipelined: those made during one step of the event loop go to the broker together.

aiormq's `basic_publish` takes the channel's lock, builds the frames with pamqp and queues them, once per message.
`PublishPipeline` gathers the publishes of one step, then under one hold of the lock gives each its delivery tag
and its confirmation (registered with the channel exactly as `basic_publish` registers it, so aiormq's reader
resolves acks, nacks, returns and a closing channel as usual), and queues all their frames (marshalled by pamqp,
as aiormq does) as one write. Each caller still waits for its own message's confirm: nothing is answered before the
broker has it.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader


def encode_publish(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    *,
    content_type: str,
    delivery_mode: int,
    message_id: str,
    headers: Mapping[str, Any] | None,
    max_content_size: int,
    mandatory: bool = True,
) -> bytes:
    """Basic.Publish, its content header and its body frames, marshalled by pamqp as `basic_publish` does."""
    properties = spec.Basic.Properties(
        content_type=content_type,
        delivery_mode=delivery_mode,
        headers=dict(headers) if headers is not None else None,
        message_id=message_id,
    )
    frames: list[Any] = [
        spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
        ContentHeader(properties=properties, body_size=len(body)),
    ]
    frames += [ContentBody(body[start : start + max_content_size]) for start in range(0, len(body), max_content_size)]
    return ChannelFrame.marshall(channel_number=channel, frames=frames).payload


@dataclass(frozen=True)
class Publish:
    """One message waiting for the next batch, and its caller's future."""

    exchange: str
    routing_key: str
    body: bytes
    content_type: str
    delivery_mode: int
    message_id: str
    headers: Mapping[str, Any] | None
    done: "asyncio.Future[None]"


class PublishPipeline:
    """Publishes of one step of the event loop, sent together on an aiormq channel with publisher confirms."""

    def __init__(self) -> None:
        self._waiting: list[Publish] = []

    def publish(self, channel: aiormq.Channel, item: Publish) -> None:
        """Queue `item` for the next batch on `channel`; its `done` is resolved by the broker's answer."""
        if not self._waiting:
            asyncio.get_running_loop().create_task(self._send(channel))
        self._waiting.append(item)

    async def _send(self, channel: aiormq.Channel) -> None:
        await asyncio.sleep(0)  # let the rest of this step's publishes join
        batch, self._waiting = self._waiting, []
        encoded: list[tuple[Publish, bytes]] = []
        for item in batch:
            try:
                encoded.append((item, self._encode(channel, item)))
            except Exception as exc:  # a routing key or message id too long: this publish alone fails
                _fail(item, exc)
        if not encoded:
            return
        registered = 0
        try:
            async with channel.lock:
                first = channel.delivery_tag + 1
                for item, _ in encoded:
                    self._register(channel, item)
                    registered += 1
                payload = b"".join(frames for _, frames in encoded)
                await channel.write_queue.put(ChannelFrame(payload=payload, should_close=False))
                registered = 0  # queued: from here on the broker's answers settle them
        except BaseException as exc:
            if registered:  # never queued: the tags go back, as basic_publish gives back an unsent one
                for tag in range(first, first + registered):
                    confirmation = channel.confirmations.pop(tag, None)
                    if isinstance(confirmation, asyncio.Future):
                        confirmation.cancel()
                channel.delivery_tag = first - 1
            for item, _ in encoded:
                _fail(item, exc if isinstance(exc, Exception) else ConnectionError(f"publish interrupted: {exc!r}"))
            if not isinstance(exc, Exception):
                raise

    @staticmethod
    def _encode(channel: aiormq.Channel, item: Publish) -> bytes:
        return encode_publish(
            channel.number,
            item.exchange,
            item.routing_key,
            item.body,
            content_type=item.content_type,
            delivery_mode=item.delivery_mode,
            message_id=item.message_id,
            headers=item.headers,
            max_content_size=channel.max_content_size,
        )

    @staticmethod
    def _register(channel: aiormq.Channel, item: Publish) -> None:
        """The item's delivery tag and confirmation, as `basic_publish` registers them."""
        channel.delivery_tag += 1
        tag = channel.delivery_tag
        confirmation = channel.create_future()
        channel.confirmations[tag] = confirmation
        channel.message_id_delivery_tag[item.message_id] = tag

        def settle(answer: "asyncio.Future[Any]") -> None:
            if channel.message_id_delivery_tag.get(item.message_id) == tag:
                channel.message_id_delivery_tag.pop(item.message_id)
            if answer.cancelled():
                _fail(item, ConnectionError("the channel closed before the broker confirmed"))
            elif (error := answer.exception()) is not None:
                _fail(item, error)
            elif not isinstance(answer.result(), spec.Basic.Ack):
                _fail(item, ConnectionError(f"the broker answered {answer.result()!r}"))
            elif not item.done.done():
                item.done.set_result(None)

        confirmation.add_done_callback(settle)


def _fail(item: Publish, exc: BaseException) -> None:
    if not item.done.done():
        item.done.set_exception(exc)
