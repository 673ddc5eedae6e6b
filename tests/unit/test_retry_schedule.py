"""Where a failed message waits before its next attempt."""

import pytest

from omni_runtime.consumer import choose_delay
from omni_runtime.topology import ROUTER_UPDATES, amqp_arguments

DELAYS = [1_000, 5_000, 30_000]


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1_000), (2, 5_000), (3, 30_000), (9, 30_000)])
def test_delays_grow_with_attempts(attempt: int, expected: int) -> None:
    assert choose_delay(DELAYS, attempt, None) == expected


@pytest.mark.parametrize(("retry_after", "expected"), [(0.5, 1_000), (2, 5_000), (5, 5_000), (100, 30_000)])
def test_retry_after_picks_the_first_wait_that_covers_it(retry_after: float, expected: int) -> None:
    assert choose_delay(DELAYS, 1, retry_after) == expected


def test_wait_queues_dead_letter_back_into_their_queue() -> None:
    wait = ROUTER_UPDATES.wait_queue(5_000)
    assert wait.name == "router.updates.wait.5000ms"
    assert amqp_arguments(wait.arguments) == {
        "x-message-ttl": 5_000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "router.updates",
    }
    assert ROUTER_UPDATES.parking_lot.name == "router.updates.parked"
