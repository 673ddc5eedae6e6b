"""Delivering outbound webhooks: one event to one subscription, signed, each attempt recorded.

The router publishes a `webhook.delivery` per (subscription, event); this POSTs the event's JSON to the
subscription's URL with `X-Omni-Signature: sha256=<hex HMAC-SHA256(secret, body)>` and `Idempotency-Key: <event
id>`, through the consumer's retry machinery (quick retries, wait queues, the parking lot, replay). Every attempt
is a document in `webhook_deliveries` (API.md: `{"id", "subscription_id", "event_id", "attempt", "at",
"status_code", "outcome", "error"}`); the last one of a delivery that gives up is marked `failed`. URL and secret
are read from `webhook_subscriptions` at each attempt; the URL passes the same destination check as attachment
downloads (http(s), no private addresses unless ALLOW_PRIVATE_FETCH), and redirects are not followed.
"""

import logging
from datetime import UTC, datetime
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict

from omni_contracts import WebhookDelivery
from omni_providers.http import retry_after_seconds
from omni_providers.signatures import OMNI_SIGNATURE_HEADER, hmac_sha256_signature
from omni_providers.thirdparty import IDEMPOTENCY_KEY_HEADER
from omni_runtime.database import Database, Document
from omni_runtime.destinations import check_destination
from omni_runtime.errors import PermanentError, RetryLater, Unrecorded
from omni_runtime.ids import new_id

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retrying", "failed"]
EVENT_HEADER = "X-Omni-Event"
USER_AGENT = "omnichannel-webhooks/1"
ERROR_SNIPPET = 200


class Answered(BaseModel):
    """A receiver's 2xx that could not be written down at once (the `x-omni-outcome` header): all recording needs."""

    model_config = ConfigDict(frozen=True)
    status_code: int
    at: datetime


def delivery_key(delivery: WebhookDelivery) -> str:
    return f"{delivery.subscription_id}:{delivery.webhook.id}"


async def deliver_webhook(
    delivery: WebhookDelivery, db: Database, http: httpx.AsyncClient, allow_private: bool
) -> None:
    """One attempt: POST the event, record how it went; raise RetryLater or PermanentError for the consumer."""
    subscription = await db.webhook_subscriptions.find_one({"_id": delivery.subscription_id})
    if subscription is None or subscription.get("active") is False:
        # Nothing left to deliver to, now or after a replay: recorded, and not parked.
        gone = "deleted" if subscription is None else "inactive"
        await record_attempt(db, delivery, "failed", None, f"the subscription is {gone}")
        return
    if await db.webhook_deliveries.find_one({"delivery_key": delivery_key(delivery), "outcome": "delivered"}):
        return  # delivered before (this is a redelivery after a crash, or a replay of a copy)
    url, secret = _target(subscription)
    try:
        if not secret:
            raise PermanentError("the subscription has no secret to sign with")
        await check_destination(url, allow_private, verb="call", host_verb="call")
    except PermanentError as exc:
        await record_attempt(db, delivery, "failed", None, str(exc))
        raise
    except RetryLater as exc:
        await record_attempt(db, delivery, "retrying", None, str(exc))
        raise
    await _post(delivery, db, http, url, secret)


async def record_answered(delivery: WebhookDelivery, outcome: str, db: Database) -> None:
    """The consumer's `record` step: a delivery the receiver took, written down without posting again."""
    answered = Answered.model_validate_json(outcome)
    await record_attempt(db, delivery, "delivered", answered.status_code, None, at=answered.at)


async def give_up(delivery: WebhookDelivery | None, cause: str, db: Database) -> None:
    """Called before a delivery is parked: its last attempt is `failed`, with the cause."""
    if delivery is None:
        return
    key = delivery_key(delivery)
    last = await db.webhook_deliveries.find_one({"delivery_key": key}, {"_id": 1}, sort=[("attempt", -1)])
    if last is None:
        await record_attempt(db, delivery, "failed", None, cause)
        return
    await db.webhook_deliveries.update_one({"_id": last["_id"]}, {"$set": {"outcome": "failed", "error": cause}})


async def record_attempt(
    db: Database,
    delivery: WebhookDelivery,
    outcome: Outcome,
    status_code: int | None,
    error: str | None,
    *,
    at: datetime | None = None,
) -> None:
    key = delivery_key(delivery)
    attempt = await db.webhook_deliveries.count_documents({"delivery_key": key}) + 1
    await db.webhook_deliveries.insert_one(
        {
            "_id": new_id(),
            "subscription_id": delivery.subscription_id,
            "event_id": delivery.webhook.id,
            "event": delivery.webhook.event,
            "delivery_key": key,
            "attempt": attempt,
            "at": at or datetime.now(UTC),
            "status_code": status_code,
            "outcome": outcome,
            "error": error,
        }
    )


async def _post(delivery: WebhookDelivery, db: Database, http: httpx.AsyncClient, url: httpx.URL, secret: str) -> None:
    body = delivery.webhook.model_dump_json().encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        OMNI_SIGNATURE_HEADER: hmac_sha256_signature(secret, body),
        IDEMPOTENCY_KEY_HEADER: delivery.webhook.id,
        EVENT_HEADER: delivery.webhook.event,
    }
    what = f"webhook receiver {url.host}"
    try:
        # Streamed, so a receiver answering with an endless body costs no more than the snippet kept of it.
        async with http.stream("POST", url, content=body, headers=headers) as response:
            status, retry_after, head = response.status_code, retry_after_seconds(response), await _head(response)
    except httpx.TimeoutException:
        await record_attempt(db, delivery, "retrying", None, f"{what} timed out")
        raise RetryLater(f"{what} timed out") from None
    except httpx.TransportError as exc:
        reason = f"{what} unreachable: {type(exc).__name__}"
        await record_attempt(db, delivery, "retrying", None, reason)
        raise RetryLater(reason) from None
    if 200 <= status < 300:
        answered = Answered(status_code=status, at=datetime.now(UTC))
        try:
            await record_attempt(db, delivery, "delivered", status, None, at=answered.at)
        except Exception as exc:  # the receiver has it: from now on only the recording is tried again
            raise Unrecorded(answered.model_dump_json(), f"{type(exc).__name__}: {exc}") from exc
        return
    text = head.decode(errors="replace").strip()
    reason = f"{what} answered {status}" + (f": {text}" if text else "")
    if status in (408, 425, 429) or status >= 500:
        await record_attempt(db, delivery, "retrying", status, reason)
        raise RetryLater(reason, retry_after, throttled=status == 429)
    # Any other answer (a 4xx, a redirect, which is not followed) is the receiver's refusal: parked for a replay.
    await record_attempt(db, delivery, "failed", status, reason)
    raise PermanentError(reason)


def _target(subscription: Document) -> tuple[httpx.URL, str]:
    try:
        url = httpx.URL(str(subscription.get("url") or ""))
    except httpx.InvalidURL:
        url = httpx.URL("")
    return url, str(subscription.get("secret") or "")


async def _head(response: httpx.Response) -> bytes:
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= ERROR_SNIPPET:
            break
    return head[:ERROR_SNIPPET]
