"""Queues with operators for routing tests, customers writing in, and a second router on the same broker."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from omni_providers import ProviderRegistry
from omni_router.bootstrap import Router, adapters, wire
from omni_router.bootstrap import create_app as router_app
from omni_router.routing import load_rules
from omni_runtime.broker import Broker
from omni_runtime.database import Database
from omni_runtime.settings import Settings
from omni_runtime.web import HttpServer
from tests.support.infra import free_port
from tests.support.seed import customer_message
from tests.support.stack import Stack, signed


@dataclass
class Team:
    """A queue, its operators (in creation order) and the channel customers write to."""

    queue_id: str
    provider: str
    secret: str
    operators: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, index: int) -> str:
        return self.tokens[self.operators[index]]


async def seed_team(
    stack: Stack,
    *,
    rule: str,
    capacities: list[int],
    roles: list[str] | None = None,
    online: int | None = None,
    provider: str = "acme",
    **queue: Any,
) -> Team:
    """A queue with `rule` and one operator per capacity (the first `online` of them online), and a channel."""
    async with stack.admin() as admin:
        team = Team(queue_id="", provider=provider, secret=f"s3cret-{provider}")
        for n, capacity in enumerate(capacities):
            role = roles[n] if roles else "operator"
            created = await admin.post(
                "/api/admin/operators", json={"name": f"op{n}", "max_chats": capacity, "role": role}
            )
            assert created.status_code == 201, created.text
            team.operators.append(created.json()["id"])
            team.tokens[created.json()["id"]] = created.json()["token"]
        answer = await admin.post(
            "/api/admin/queues",
            json={"name": "support", "routing_rule": rule, "operator_ids": team.operators, **queue},
        )
        assert answer.status_code == 201, answer.text
        team.queue_id = answer.json()["id"]
        channel = await admin.post(
            "/api/admin/channels",
            json={
                "name": "Acme chat",
                "provider": provider,
                "source": "bot-1",
                "queue_id": team.queue_id,
                "settings": {"secret": team.secret, "outgoing_url": "http://127.0.0.1:9/unused"},
            },
        )
        assert channel.status_code == 201, channel.text
    for operator in team.operators[: len(capacities) if online is None else online]:
        await set_status(stack, team.tokens[operator], "online")
    return team


async def set_status(stack: Stack, token: str, status: str, router: str | None = None) -> None:
    async with stack.client("router", token) as client:
        answer = await client.put(f"{router or ''}/api/operator/status", json={"status": status})
    assert answer.status_code == 200, answer.text


async def write_in(stack: Stack, team: Team, customers: range, *, prefix: str = "m", concurrency: int = 16) -> None:
    """Customer n sends message `<prefix>-<n>` from sender `cust-<n>`, several at a time."""
    gate = asyncio.Semaphore(concurrency)
    async with stack.client("ingress") as ingress:

        async def one(n: int) -> None:
            raw, headers = signed(customer_message(f"{prefix}-{n}", sender=f"cust-{n}"), team.secret)
            async with gate:
                answer = await ingress.post(f"/webhooks/{team.provider}/receive", content=raw, headers=headers)
            assert answer.status_code == 200, answer.text

        await asyncio.gather(*(one(n) for n in customers))


@asynccontextmanager
async def another_router(settings: Settings) -> AsyncIterator[str]:
    """A second router process's worth: same broker and database, its own port; answers its base URL."""
    port = free_port()
    server = HttpServer(router_app(settings.model_copy(update={"router_port": port})), "127.0.0.1", port)
    await server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


@asynccontextmanager
async def router_on(db: Database, broker: Broker, settings: Settings) -> AsyncIterator[Router]:
    """The router's use cases built by its composition root on a test's database and broker (no consumers, no HTTP)."""
    async with httpx.AsyncClient() as http:
        yield wire(adapters(db, broker, http, ProviderRegistry.from_entry_points(settings)), settings, load_rules())
