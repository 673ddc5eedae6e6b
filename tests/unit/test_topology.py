"""The broker layout: quorum consumer queues with a delivery limit, the router's partitions, who holds which."""

from collections import Counter
from datetime import UTC, datetime

import pytest

from omni_contracts import MessageReceived, MessageSent, UnifiedMessage
from omni_router.entrypoints.partitions import share
from omni_runtime.consumer import is_blip, publishable_headers
from omni_runtime.errors import BrokerUnavailable, PermanentError, RetryLater
from omni_runtime.topology import (
    DISPATCHER_OUTGOING,
    Topology,
    amqp_arguments,
    chat_key,
    operator_queue,
    partition_of,
)

TOPOLOGY = Topology(partitions=8, delivery_limit=5, retry_delays_ms=(200, 400))


def received(channel_id: str, sender: str) -> MessageReceived:
    message = UnifiedMessage(
        channel_id=channel_id,
        provider="acme",
        provider_message_id="m-1",
        sender=sender,
        recipient="bot-1",
        sent_at=datetime(2026, 1, 1, tzinfo=UTC),
        text="hi",
    )
    return MessageReceived(message=message)


def test_a_chat_key_lands_on_the_same_partition_in_every_process() -> None:
    # Fixed values: a change of the hash would send a chat's next messages to another partition mid-conversation.
    assert partition_of(chat_key("ch-1", "cust-1"), 8) == 1
    assert partition_of(chat_key("ch-1", "cust-2"), 8) == 7
    assert partition_of(chat_key("c", "s"), 1000) == 727


def test_chats_spread_evenly_over_the_partitions() -> None:
    counts = Counter(partition_of(chat_key("ch-1", f"cust-{n}"), 8) for n in range(8000))
    print("chats per partition:", dict(sorted(counts.items())))
    assert sorted(counts) == list(range(8))
    assert max(counts.values()) < 1.1 * 1000 and min(counts.values()) > 0.9 * 1000


def test_received_messages_are_routed_by_partition_other_events_by_kind() -> None:
    event = received("ch-1", "cust-2")
    assert TOPOLOGY.routing_key(event) == "message.received.7"
    assert TOPOLOGY.routing_key(received("ch-1", "cust-1")) == "message.received.1"
    assert Topology(partitions=1).routing_key(event) == "message.received.0"
    assert TOPOLOGY.routing_key(MessageSent(message_id="m", chat_id="c")) == "message.sent"


def test_consumer_queues_are_quorum_queues_that_park_past_the_delivery_limit() -> None:
    outgoing = TOPOLOGY.consumer(DISPATCHER_OUTGOING)
    assert amqp_arguments(outgoing.arguments) == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 5,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "dispatcher.outgoing.parked",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert outgoing.bindings == (("omni.events", "message.outgoing"),)
    # Wait queues, parking lots and operators' queues stay classic (their arguments are unchanged since 0.1).
    assert not outgoing.wait_queue(200).quorum and not outgoing.parking_lot.quorum
    assert not operator_queue("op-1").quorum


def test_the_router_input_is_partitioned_with_one_active_consumer_each() -> None:
    names = [q.name for q in TOPOLOGY.inbox]
    assert names == [f"router.received.{n}" for n in range(8)]
    third = TOPOLOGY.inbox[3]
    assert third.bindings == (("omni.events", "message.received.3"),)
    assert amqp_arguments(third.arguments)["x-single-active-consumer"] is True
    assert third.quorum and third.arguments["x_dead_letter_routing_key"] == "router.received.3.parked"
    assert [q.name for q in TOPOLOGY.consumer_queues][8:] == [
        "router.updates",
        "dispatcher.outgoing",
        "profiles.requested",
        "attachments.requested",
        "dispatcher.webhooks",
    ]
    assert TOPOLOGY.family("router.received") == names
    assert TOPOLOGY.family("dispatcher.outgoing") == ["dispatcher.outgoing"]
    assert TOPOLOGY.family("nothing") == []


@pytest.mark.parametrize("routers", [1, 2, 3, 5, 8, 11])
def test_partitions_are_shared_out_without_overlap(routers: int) -> None:
    live = [f"router-{n:02d}" for n in range(routers)]
    shares = [share(live, me, 8) for me in live]
    assert set().union(*shares) == set(range(8))
    assert sum(len(s) for s in shares) == 8
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1


def test_a_router_not_yet_seen_counts_itself() -> None:
    assert share(["b"], "a", 4) == {0, 2}
    assert share([], "a", 4) == {0, 1, 2, 3}


def test_only_blips_are_tried_again_at_once() -> None:
    assert is_blip(RetryLater("connection reset"))
    assert is_blip(BrokerUnavailable("not confirmed"))
    assert not is_blip(RetryLater("429", throttled=True))
    assert not is_blip(RetryLater("503 with Retry-After", retry_after=30))
    assert not is_blip(PermanentError("400"))
    assert not is_blip(ValueError("a bug"))


def test_broker_headers_are_not_copied_into_republished_messages() -> None:
    headers = {
        "x-omni-attempt": 2,
        "x-delivery-count": 4,
        "x-death": [{"reason": "delivery_limit"}],
        "x-first-death-queue": "q",
        "x-last-death-reason": "delivery_limit",
        "custom": "kept",
    }
    assert publishable_headers(headers) == {"x-omni-attempt": 2, "custom": "kept"}
