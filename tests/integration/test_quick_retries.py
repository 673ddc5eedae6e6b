"""A consumer tries a blip again at once (three tries within a second) and only then waits; a rate limit or a
named wait goes straight to the wait queue, and a refusal straight to the parking lot."""

import asyncio
import time

import pytest

from omni_contracts import ProfileRequested
from omni_runtime.broker import Broker
from omni_runtime.consumer import QuickRetries
from omni_runtime.errors import PermanentError, RetryLater
from omni_runtime.metrics import Metrics
from omni_runtime.parking import list_parked
from omni_runtime.service import configured_consumer
from omni_runtime.settings import Settings
from omni_runtime.topology import PROFILES_REQUESTED
from tests.support.stack import eventually

pytestmark = pytest.mark.integration

# What the handler does on each call, by the request's external id: raise, or succeed (None).
SCRIPTS: dict[str, list[Exception | None]] = {
    "blip": [RetryLater("connection reset"), RetryLater("answered 502"), None],
    "throttled": [RetryLater("answered 429", throttled=True), None],
    "named-wait": [RetryLater("answered 503", retry_after=0.1), None],
    "refused": [PermanentError("answered 403")],
}


async def test_blips_are_tried_again_at_once_rate_limits_and_named_waits_wait(
    broker: Broker, settings: Settings
) -> None:
    calls: dict[str, list[tuple[float, int]]] = {name: [] for name in SCRIPTS}  # (seconds in, call number)
    started = time.monotonic()

    async def handle(request: ProfileRequested) -> None:
        tried = calls[request.external_id]
        tried.append((time.monotonic() - started, len(tried)))
        outcome = SCRIPTS[request.external_id][len(tried) - 1]
        if outcome is not None:
            raise outcome

    consumer = configured_consumer(
        broker, settings, Metrics("test"), PROFILES_REQUESTED, ProfileRequested.model_validate_json, handle, prefetch=8
    )
    await consumer.start()
    try:
        for name in SCRIPTS:
            await broker.publish_event(
                ProfileRequested(contact_id=name, channel_id="ch-1", provider="acme", external_id=name)
            )

        async def settled() -> bool:
            return all(len(calls[name]) == len(script) for name, script in SCRIPTS.items())

        await eventually(settled, timeout=15)
        await asyncio.sleep(0.5)  # nothing more may come
        parked = await list_parked(broker, "profiles.requested")
    finally:
        await consumer.stop()
    print({name: [round(at, 2) for at, _ in tries] for name, tries in calls.items()})

    assert {name: len(tries) for name, tries in calls.items()} == {
        "blip": QuickRetries().attempts,
        "throttled": 2,
        "named-wait": 2,
        "refused": 1,
    }
    blip = [at for at, _ in calls["blip"]]
    assert blip[-1] - blip[0] < 1.0  # three tries within a second, no wait queue in between
    throttled = [at for at, _ in calls["throttled"]]
    assert throttled[1] - throttled[0] >= settings.retry_delays_ms[0] / 1000 * 0.9  # through the first wait queue
    assert [(p.body["external_id"], p.cause) for p in parked] == [("refused", "answered 403")]
