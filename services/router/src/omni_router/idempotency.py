"""Idempotency keys of operator replies: the same `Idempotency-Key` from the same operator within 24 h answers the
first answer again and stores one message.

The first request with a key claims it (a unique `_id` of operator and key) with a fingerprint of the request and
the id its reply will be stored under. Every request with the key then sends under that id, so the messages'
unique `_id` stores the reply once however many repeats race, and a repeat finds it stored. A key that comes
with another request (other chat, other text) is refused with 422. Claims expire 24 h after the key's first use:
a TTL index removes them (nx-27017 purges expired documents on the next read, MongoDB within about a minute),
and a claim found past its time counts as gone, so the boundary is exact on both.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError
from starlette.requests import Request

from omni_runtime.database import IDEMPOTENCY_KEY_SECONDS, Database
from omni_runtime.ids import new_id
from omni_runtime.web import ApiError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_LENGTH = 255
KEPT_FOR = timedelta(seconds=IDEMPOTENCY_KEY_SECONDS)  # also the TTL of the `idempotency_keys` index
CLAIM_TRIES = 5


def idempotency_key(request: Request) -> str | None:
    """The request's key, if it gave one: 1 to 255 visible ASCII characters (a UUID, say), else 400."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_LENGTH or not all("!" <= char <= "~" for char in key):
        raise ApiError(
            400, "invalid_idempotency_key", f"{HEADER} must be 1 to {MAX_LENGTH} visible ASCII characters, no spaces"
        )
    return key


def fingerprint(chat_id: str, body: Any) -> str:
    """What makes two requests the same request: the chat and the parsed body (not its spacing or key order)."""
    canonical = json.dumps({"chat_id": chat_id, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(db: Database, operator_id: str, key: str, request_fingerprint: str) -> str:
    """The id of the reply this operator's key stands for: made now on the key's first use, else the one made then.
    422 when the key was first used with another request."""
    claim_id = f"{operator_id}:{key}"
    for _ in range(CLAIM_TRIES):
        now = datetime.now(UTC)
        message_id = new_id()
        try:
            await db.idempotency_keys.insert_one(
                {
                    "_id": claim_id,
                    "operator_id": operator_id,
                    "fingerprint": request_fingerprint,
                    "message_id": message_id,
                    "created_at": now,
                }
            )
            return message_id
        except DuplicateKeyError:
            earlier = await db.idempotency_keys.find_one({"_id": claim_id})
        if earlier is None:
            continue  # expired and removed since the insert failed: claim it afresh
        if earlier["created_at"] <= now - KEPT_FOR:
            await db.idempotency_keys.delete_one({"_id": claim_id, "message_id": earlier["message_id"]})
            continue
        if earlier["fingerprint"] != request_fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                f"this {HEADER} came with another request (another chat or body) within the last 24 h; "
                "use a new key for a new reply",
            )
        return str(earlier["message_id"])
    raise ApiError(409, "idempotency_key_busy", f"this {HEADER} kept changing hands; try again")
