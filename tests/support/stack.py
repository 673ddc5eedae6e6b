"""Running the services in this process, each on its own real loopback port, as the tests need them."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import httpx
from starlette.applications import Starlette

from omni_attachments.app import create_app as attachments_app
from omni_dispatcher.app import create_app as dispatcher_app
from omni_ingress.app import create_app as ingress_app
from omni_profiles.app import create_app as profiles_app
from omni_providers.signatures import OMNI_SIGNATURE_HEADER, hmac_sha256_signature
from omni_router.bootstrap import create_app as router_app
from omni_runtime.settings import Settings
from omni_runtime.topology import Topology, operator_routing_key
from omni_runtime.web import HttpServer

T = TypeVar("T")

FACTORIES: dict[str, Callable[[Settings], Starlette]] = {
    "ingress": ingress_app,
    "router": router_app,
    "dispatcher": dispatcher_app,
    "profiles": profiles_app,
    "attachments": attachments_app,
}
ADMIN_TOKEN = "admin-token-for-tests"
MEDIA_SIGNING_KEY = "media-signing-key-for-tests-0123456789"


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 15.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


class Stack:
    """The services of one test, sharing its vhost and database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.servers: dict[str, HttpServer] = {}
        self.extra: dict[str, Callable[[Settings], Starlette]] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.settings.port_of(name)}"

    async def start(self, *names: str) -> None:
        for name in names:
            factory = FACTORIES.get(name) or self.extra[name]
            server = HttpServer(
                factory(self.settings),
                "127.0.0.1",
                self.settings.port_of(name),
                header_timeout=self.settings.request_header_timeout_seconds,
                body_timeout=self.settings.request_body_timeout_seconds,
            )
            await server.start()
            self.servers[name] = server

    async def stop(self, *names: str) -> None:
        for name in names:
            server = self.servers.pop(name, None)
            if server is not None:
                await server.stop()

    async def close(self) -> None:
        await self.stop(*reversed(list(self.servers)))

    def client(self, name: str, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url(name), headers=headers, timeout=15)

    def admin(self) -> httpx.AsyncClient:
        return self.client("router", ADMIN_TOKEN)


def signed(body: dict[str, Any] | bytes, secret: str) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", OMNI_SIGNATURE_HEADER: hmac_sha256_signature(secret, raw)}


@dataclass
class Simulator:
    """The provider simulator of one test: its base URL and its recorded state."""

    url: str
    state: Any

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=15)

    async def requests(self, path_prefix: str = "/thirdparty/") -> list[dict[str, Any]]:
        async with self.client() as client:
            answer = await client.get("/_sim/requests", params={"path_prefix": path_prefix})
            items: list[dict[str, Any]] = answer.json()["items"]
            return items

    async def fault(self, **fault: Any) -> None:
        async with self.client() as client:
            assert (await client.post("/_sim/faults", json=fault)).status_code in (200, 201)


class OperatorInbox:
    """Reads an operator's `operator.<id>` queue over AMQP, the way an operator console would."""

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> "OperatorInbox":
        self._connection = await aio_pika.connect(self._url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def drain(self, operator_id: str, quiet: float = 0.5) -> list[dict[str, Any]]:
        """Everything on the operator's queue now, waiting `quiet` seconds for stragglers."""
        assert self._connection is not None
        channel = await self._connection.channel()
        queue = await channel.get_queue(operator_routing_key(operator_id), ensure=True)
        found: list[dict[str, Any]] = []
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < quiet:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            found.append(json.loads(message.body))
            idle_since = time.monotonic()
        await channel.close()
        return found

    async def queue_length(self, name: str) -> int:
        assert self._connection is not None
        channel = await self._connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        count = queue.declaration_result.message_count or 0
        await channel.close()
        return int(count)

    async def router_input_length(self, settings: Settings) -> int:
        """Messages waiting in the router's input: every partition (`router.received.<n>`) together."""
        partitions = Topology(partitions=settings.router_partitions).inbox
        return sum([await self.queue_length(partition.name) for partition in partitions])
