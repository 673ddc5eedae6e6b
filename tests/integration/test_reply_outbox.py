"""The reply outbox: a reply stored while the broker could not confirm is published by the sweep, once, and a
reply 0.1 left unpublished (stored without `publish_due`) is found too."""

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from omni_contracts import MessageOutgoing
from omni_router.adapters.upgrades import backfill_publish_due
from omni_router.service_layer.replies import Replies
from omni_runtime.broker import Broker
from omni_runtime.database import Database, Document, ensure_indexes
from omni_runtime.service import topology_of
from omni_runtime.settings import Settings
from omni_runtime.topology import DISPATCHER_OUTGOING
from tests.support.routing import router_on

pytestmark = pytest.mark.integration


@pytest.fixture
async def replies(db: Database, settings: Settings) -> AsyncIterator[Replies]:
    await ensure_indexes(db)
    broker = Broker(settings.amqp_url, topology=topology_of(settings))
    await broker.connect()
    async with router_on(db, broker, settings) as router:
        yield router.services.replies
    await broker.close()


def reply(message_id: str, **fields: object) -> Document:
    return {
        "_id": message_id,
        "chat_id": "chat",
        "channel_id": "ch",
        "direction": "outgoing",
        "type": "text",
        "text": f"reply {message_id}",
        "recipient": "cust",
        "attachments": [],
        "status": "queued",
        "published": False,
        "created_at": datetime.now(UTC) - timedelta(minutes=5),
        **fields,
    }


async def test_the_sweep_publishes_stored_replies_once(replies: Replies, db: Database, settings: Settings) -> None:
    await db.channels.insert_one(
        {"_id": "ch", "name": "Shop", "provider": "thirdparty", "source": "s", "queue_id": "q"}
    )
    await db.messages.insert_many(
        [
            reply("stranded", publish_due=time.time() - 60),
            reply("fresh", publish_due=time.time()),  # its own request is still publishing it
            reply("from-0.1"),
            reply("sent", published=True, status="sent"),
        ]
    )
    assert await backfill_publish_due(db) == 1
    assert await replies.publish_due(older_than_seconds=10) == 2
    assert await replies.publish_due(older_than_seconds=10) == 0  # published: not found again
    done = {m["_id"]: m async for m in db.messages.find({})}
    assert {k for k, m in done.items() if m["published"]} == {"stranded", "from-0.1", "sent"}
    assert "publish_due" not in done["stranded"] and "publish_due" in done["fresh"]

    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(DISPATCHER_OUTGOING.name, ensure=True)
        got = []
        while (incoming := await queue.get(fail=False)) is not None:
            got.append(MessageOutgoing.model_validate_json(incoming.body).message_id)
            await incoming.ack()
    finally:
        await connection.close()
    assert sorted(got) == ["from-0.1", "stranded"]
