"""Operators' Idempotency-Key claims in MongoDB (`idempotency_keys`): the unique `_id` makes the first use win,
and a TTL index removes a claim 24 h after it (nx-27017 purges expired documents on the next read, MongoDB within
about a minute: tests/integration/test_idempotency_keys.py records both)."""

from pymongo.errors import DuplicateKeyError

from omni_router.adapters.documents import Database, Document
from omni_router.domain.replies import KeyClaim


def _claim(doc: Document) -> KeyClaim:
    return KeyClaim(doc["_id"], doc["operator_id"], doc["fingerprint"], doc["message_id"], doc["created_at"])


class MongoIdempotencyKeys:
    def __init__(self, db: Database) -> None:
        self._keys = db.idempotency_keys

    async def claim(self, claim: KeyClaim) -> KeyClaim | None:
        try:
            await self._keys.insert_one(
                {
                    "_id": claim.id,
                    "operator_id": claim.operator_id,
                    "fingerprint": claim.fingerprint,
                    "message_id": claim.message_id,
                    "created_at": claim.created_at,
                }
            )
            return claim
        except DuplicateKeyError:
            earlier = await self._keys.find_one({"_id": claim.id})
        return _claim(earlier) if earlier is not None else None

    async def forget(self, claim: KeyClaim) -> None:
        await self._keys.delete_one({"_id": claim.id, "message_id": claim.message_id})
