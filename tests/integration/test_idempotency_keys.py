"""Claiming an operator's Idempotency-Key: racing first uses agree on one reply id, another request under the key is
refused, a key past 24 h is claimed afresh; and how the stand-in honours the TTL index that removes old keys."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from omni_router.adapters.clock import SystemClock
from omni_router.adapters.idempotency_keys import MongoIdempotencyKeys
from omni_router.domain.errors import Unprocessable
from omni_router.entrypoints.errors import http_status
from omni_router.service_layer.replies import claim_key
from omni_runtime.database import IDEMPOTENCY_KEY_SECONDS, Database, ensure_indexes
from tests.support.infra import Infra


async def claim(db: Database, operator_id: str, key: str, fingerprint: str) -> str:
    return await claim_key(MongoIdempotencyKeys(db), SystemClock(), operator_id, key, fingerprint)


pytestmark = pytest.mark.integration


async def test_racing_first_uses_of_a_key_agree_on_one_reply_id(db: Database) -> None:
    await ensure_indexes(db)
    ids = await asyncio.gather(*(claim(db, "op-1", "k", "fp-1") for _ in range(20)))
    assert len(set(ids)) == 1
    assert await db.idempotency_keys.count_documents({}) == 1
    assert await claim(db, "op-2", "k", "fp-1") != ids[0]  # another operator's key of the same name
    with pytest.raises(Unprocessable) as reused:
        await claim(db, "op-1", "k", "fp-2")
    assert (http_status(reused.value), reused.value.code) == (422, "idempotency_key_reused")


async def test_a_key_first_used_over_24_hours_ago_is_claimed_afresh(db: Database, infra: Infra) -> None:
    """The TTL index removes old keys; on nx-27017 an expired document is gone at the next read (it purges on reads),
    on MongoDB within about a minute (its TTL monitor), so the claim also treats an expired key it finds as gone."""
    await ensure_indexes(db)
    indexes = await db.idempotency_keys.index_information()
    assert [i.get("expireAfterSeconds") for i in indexes.values() if i["key"] == [("created_at", 1)]] == [
        IDEMPOTENCY_KEY_SECONDS
    ]
    day_ago = datetime.now(UTC) - timedelta(seconds=IDEMPOTENCY_KEY_SECONDS + 60)
    await db.idempotency_keys.insert_many(
        [
            {"_id": "op-1:old", "operator_id": "op-1", "fingerprint": "fp", "message_id": "m-old", "created_at": day_ago},
            {"_id": "op-1:new", "operator_id": "op-1", "fingerprint": "fp", "message_id": "m-new", "created_at": datetime.now(UTC)},
        ]
    )  # fmt: skip
    assert await claim(db, "op-1", "old", "another request") not in ("m-old", None)
    assert await claim(db, "op-1", "new", "fp") == "m-new"

    await db.idempotency_keys.insert_one({"_id": "op-1:stale", "created_at": day_ago})
    stale = await db.idempotency_keys.find_one({"_id": "op-1:stale"})
    if infra.kind == "local":  # the difference: purged at once, on the read
        assert stale is None
