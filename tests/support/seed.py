"""Creating queues, operators and channels through the admin API, as a deployment script would."""

from dataclasses import dataclass, field
from typing import Any

from tests.support.stack import Stack


@dataclass
class Desk:
    queue_id: str
    channel_id: str
    provider: str
    source: str
    secret: str
    operators: dict[str, str] = field(default_factory=dict)  # operator id -> token


async def seed_desk(
    stack: Stack,
    *,
    operators: int = 2,
    online: int | None = None,
    provider: str = "acme",
    outgoing_url: str = "http://127.0.0.1:9/unused",
) -> Desk:
    """A `to_all` queue with `operators` operators (the first `online` of them online) and one channel."""
    async with stack.admin() as admin:
        ids: dict[str, str] = {}
        for n in range(operators):
            created = await admin.post("/api/admin/operators", json={"name": f"op{n}", "max_chats": 5})
            assert created.status_code == 201, created.text
            ids[created.json()["id"]] = created.json()["token"]
        queue = await admin.post(
            "/api/admin/queues",
            json={"name": "support", "routing_rule": "to_all", "operator_ids": list(ids)},
        )
        assert queue.status_code == 201, queue.text
        secret = "s3cret-" + provider
        channel = await admin.post(
            "/api/admin/channels",
            json={
                "name": "Acme chat",
                "provider": provider,
                "source": "bot-1",
                "queue_id": queue.json()["id"],
                "settings": {"secret": secret, "outgoing_url": outgoing_url},
            },
        )
        assert channel.status_code == 201, channel.text
    for index, token in enumerate(ids.values()):
        if index < (operators if online is None else online):
            async with stack.client("router", token) as client:
                assert (await client.put("/api/operator/status", json={"status": "online"})).status_code == 200
    return Desk(queue.json()["id"], channel.json()["id"], provider, "bot-1", secret, ids)


def customer_message(message_id: str, text: str = "hello", sender: str = "cust-1", **extra: Any) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "sender": sender,
        "recipient": "bot-1",
        "timestamp": 1_767_000_000,
        "type": "text",
        "text": text,
        "sender_name": "Ann Customer",
        **extra,
    }
