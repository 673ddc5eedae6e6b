"""Broker.publish on a real RabbitMQ: concurrent publishes each confirmed, carrying what consumers read; an
unroutable one, or one to an exchange never declared, is not confirmed."""

import asyncio
import json
from collections.abc import AsyncIterator

import aio_pika
import pytest

from omni_runtime.broker import Broker
from omni_runtime.errors import BrokerUnavailable
from omni_runtime.settings import Settings
from omni_runtime.topology import operator_queue

pytestmark = pytest.mark.integration

OPERATOR = "op-publish"


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    connected = Broker(settings.amqp_url)
    await connected.connect()
    await connected.declare_queue(operator_queue(OPERATOR))
    yield connected
    await connected.close()


async def drain(settings: Settings) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(operator_queue(OPERATOR).name)
        found = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(message)
        return found
    finally:
        await connection.close()


EXCHANGE, KEY = operator_queue(OPERATOR).bindings[0]


async def test_concurrent_publishes_are_each_confirmed_and_arrive_as_sent(broker: Broker, settings: Settings) -> None:
    await asyncio.gather(
        *(
            broker.publish(
                EXCHANGE,
                KEY,
                json.dumps({"n": n}).encode(),
                message_id=f"m-{n}",
                headers={"x-n": n} if n % 2 else None,
            )
            for n in range(200)
        )
    )

    found = await drain(settings)
    assert sorted(json.loads(message.body)["n"] for message in found) == list(range(200))
    by_id = {message.message_id: message for message in found}
    assert set(by_id) == {f"m-{n}" for n in range(200)}
    assert by_id["m-7"].headers == {"x-n": 7}
    assert by_id["m-8"].headers == {}
    assert {message.delivery_mode for message in found} == {aio_pika.DeliveryMode.PERSISTENT}
    assert {message.content_type for message in found} == {"application/json"}


async def test_a_publish_without_message_id_gets_one(broker: Broker, settings: Settings) -> None:
    await broker.publish(EXCHANGE, KEY, b"{}")
    await broker.publish(EXCHANGE, KEY, b"{}")

    ids = [message.message_id for message in await drain(settings)]
    assert len(ids) == 2 and all(ids) and ids[0] != ids[1]


async def test_an_unroutable_publish_is_not_confirmed(broker: Broker, settings: Settings) -> None:
    with pytest.raises(BrokerUnavailable, match="not confirmed"):
        await broker.publish(EXCHANGE, "nobody.listens.here", b"{}")
    # The channel stays usable after the broker returned a message.
    await broker.publish(EXCHANGE, KEY, b"{}")
    assert len(await drain(settings)) == 1


async def test_a_publish_to_an_undeclared_exchange_is_refused(broker: Broker) -> None:
    with pytest.raises(BrokerUnavailable, match="not confirmed"):
        await broker.publish("omni.nowhere", "x", b"{}")


async def test_in_one_batch_only_the_unroutable_and_the_malformed_publishes_fail(
    broker: Broker, settings: Settings
) -> None:
    results = await asyncio.gather(
        broker.publish(EXCHANGE, KEY, b'{"n": 1}', message_id="ok-1"),
        broker.publish(EXCHANGE, "nobody.listens.here", b"{}", message_id="lost"),
        broker.publish(EXCHANGE, "k" * 300, b"{}", message_id="too-long"),
        broker.publish(EXCHANGE, KEY, b'{"n": 2}', message_id="ok-2"),
        return_exceptions=True,
    )

    assert results[0] is None and results[3] is None
    assert isinstance(results[1], BrokerUnavailable) and isinstance(results[2], BrokerUnavailable)
    assert sorted(message.message_id or "" for message in await drain(settings)) == ["ok-1", "ok-2"]


async def test_a_large_body_spans_frames_and_arrives_whole(broker: Broker, settings: Settings) -> None:
    body = json.dumps({"text": "x" * 300_000}).encode()
    await broker.publish(EXCHANGE, KEY, body)
    assert [message.body for message in await drain(settings)] == [body]
