"""Steady traffic for fault tests: customers writing in through a messenger that retries, an operator replying,
and the ledger that checks afterwards that every message was stored once and every reply delivered once."""

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from omni_runtime.database import Database, Document
from omni_runtime.settings import Settings
from tests.support.seed import customer_message
from tests.support.stack import ADMIN_TOKEN, signed

PROVIDER = "acme"
SOURCE = "bot-1"
SECRET = "s3cret-fault"


def client(base_url: str, token: str | None = None, connections: int = 32) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=15, trust_env=False)


@dataclass(frozen=True)
class Desk:
    """One `to_all` queue, one online operator with room for every chat, one third-party channel."""

    queue_id: str
    channel_id: str
    operator_id: str
    token: str


async def seed_desk(
    settings: Settings, outgoing_url: str, max_chats: int = 1000, offer_timeout_seconds: float | None = None
) -> Desk:
    """One operator, one `to_all` queue, one third-party channel. `offer_timeout_seconds`: how long an offer
    stands before it is made again (the queue's, else the router's setting)."""
    router = f"http://127.0.0.1:{settings.router_port}"
    timeout = {"offer_timeout_seconds": offer_timeout_seconds} if offer_timeout_seconds else {}
    async with client(router, ADMIN_TOKEN) as admin:
        operator = await admin.post("/api/admin/operators", json={"name": "Olga", "max_chats": max_chats})
        assert operator.status_code == 201, operator.text
        queue = await admin.post(
            "/api/admin/queues",
            json={"name": "support", "routing_rule": "to_all", "operator_ids": [operator.json()["id"]], **timeout},
        )
        assert queue.status_code == 201, queue.text
        channel = await admin.post(
            "/api/admin/channels",
            json={
                "name": "Acme chat",
                "provider": PROVIDER,
                "source": SOURCE,
                "queue_id": queue.json()["id"],
                "settings": {"secret": SECRET, "outgoing_url": outgoing_url},
            },
        )
        assert channel.status_code == 201, channel.text
    token: str = operator.json()["token"]
    async with client(router, token) as me:
        assert (await me.put("/api/operator/status", json={"status": "online"})).status_code == 200
    return Desk(queue.json()["id"], channel.json()["id"], operator.json()["id"], token)


async def paced(count: int, rate: float, work: Callable[[int], Awaitable[None]]) -> None:
    """Start work(i) at i / rate seconds whatever became of the earlier ones, and wait for all of them."""
    start = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for index in range(count):
        wait = start + index / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(_run(work, index)))
    await asyncio.gather(*tasks)


async def _run(work: Callable[[int], Awaitable[None]], index: int) -> None:
    await work(index)


@dataclass
class Customers:
    """The messenger side of the channel: posts each message until ingress answers 200, as messengers retry."""

    ingress_url: str
    retry_every: float = 0.5
    give_up_after: float = 90.0
    answers: Counter[int] = field(default_factory=Counter)  # every attempt's answer; 0 is "no answer"
    accepted: dict[str, str] = field(default_factory=dict)  # provider message id -> sender
    retried: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._http = client(self.ingress_url, connections=64)

    async def close(self) -> None:
        await self._http.aclose()

    async def write(self, message_id: str, sender: str, text: str) -> None:
        raw, headers = signed(customer_message(message_id, text=text, sender=sender), SECRET)
        deadline = time.monotonic() + self.give_up_after
        while True:
            try:
                status = (
                    await self._http.post(f"/webhooks/{PROVIDER}/receive", content=raw, headers=headers)
                ).status_code
            except httpx.HTTPError:
                status = 0
            self.answers[status] += 1
            if status == 200:
                self.accepted[message_id] = sender
                return
            self.retried.add(message_id)
            if time.monotonic() > deadline:
                raise AssertionError(f"{message_id} still not accepted after {self.give_up_after:.0f} s")
            await asyncio.sleep(self.retry_every)


@dataclass
class Operator:
    """The operator answering: a reply is posted again only when the router surely did not get it."""

    router_url: str
    token: str
    give_up_after: float = 90.0
    answers: Counter[int] = field(default_factory=Counter)
    queued: dict[str, str] = field(default_factory=dict)  # reply id -> chat id, answered 202
    unknown: int = 0  # posts whose answer was lost: stored or not, the ledger finds out

    def __post_init__(self) -> None:
        self._http = client(self.router_url, self.token)

    async def close(self) -> None:
        await self._http.aclose()

    async def chats(self) -> list[str]:
        answer = await self._http.get("/api/chats", params={"limit": 200})
        return [chat["id"] for chat in answer.json()["items"]]

    async def reply(self, chat_id: str, text: str) -> str | None:
        deadline = time.monotonic() + self.give_up_after
        while True:
            try:
                answer = await self._http.post(f"/api/chats/{chat_id}/messages", json={"text": text})
            except httpx.ConnectError:  # nothing reached the router: posting again cannot double anything
                self.answers[0] += 1
            except httpx.HTTPError:
                self.unknown += 1
                return None
            else:
                self.answers[answer.status_code] += 1
                if answer.status_code == 202:
                    reply_id: str = answer.json()["id"]
                    self.queued[reply_id] = chat_id
                    return reply_id
                if answer.status_code < 500:
                    raise AssertionError(f"reply refused: {answer.status_code} {answer.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"a reply to {chat_id} was still not taken after {self.give_up_after:.0f} s")
            await asyncio.sleep(0.2)


async def wait_for(what: str, check: Callable[[], Awaitable[Any]], timeout: float, every: float = 0.25) -> None:
    """Poll until `check` answers something truthy, failing with `what` and the last answer after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not reached within {timeout:.0f} s (last: {last!r})")


@dataclass
class Ledger:
    """What the database and the messenger hold at the end, and the exactly-once checks over them."""

    incoming: Counter[str]  # provider message id -> stored copies
    unrouted: int
    outgoing: list[Document]
    deliveries: Counter[str]  # reply id -> deliveries the messenger counted (2xx)
    replays: Counter[str]  # reply id -> repeats the messenger recognised by their Idempotency-Key

    @classmethod
    async def read(cls, db: Database, deliveries: Counter[str], replays: Counter[str]) -> "Ledger":
        incoming: Counter[str] = Counter()
        unrouted = 0
        async for doc in db.messages.find({"direction": "incoming"}, {"provider_message_id": 1, "routed": 1}):
            incoming[doc["provider_message_id"]] += 1
            unrouted += not doc.get("routed")
        outgoing = [doc async for doc in db.messages.find({"direction": "outgoing"}).sort("_id", 1)]
        return cls(incoming, unrouted, outgoing, Counter(deliveries), Counter(replays))

    def counts(self) -> dict[str, int]:
        ids = {doc["_id"] for doc in self.outgoing}
        return {
            "stored_incoming": sum(self.incoming.values()),
            "distinct_incoming": len(self.incoming),
            "stored_twice": sum(1 for n in self.incoming.values() if n > 1),
            "unrouted": self.unrouted,
            "stored_replies": len(self.outgoing),
            "replies_sent": sum(1 for doc in self.outgoing if doc["status"] == "sent"),
            "replies_delivered_once": sum(1 for i in ids if self.deliveries[i] == 1),
            "replies_delivered_twice_or_more": sum(1 for i in ids if self.deliveries[i] > 1),
            "replies_never_delivered": sum(1 for i in ids if self.deliveries[i] == 0),
            "deliveries_of_unknown_replies": sum(n for i, n in self.deliveries.items() if i not in ids),
            "repeats_dropped_by_idempotency_key": sum(self.replays.values()),
        }

    def assert_exactly_once(self, accepted: set[str], queued: set[str]) -> None:
        assert set(self.incoming) == accepted, (
            f"missing {sorted(accepted - set(self.incoming))[:10]}, unexpected {sorted(set(self.incoming) - accepted)[:10]}"
        )
        doubled = {key: n for key, n in self.incoming.items() if n != 1}
        assert not doubled, f"stored more than once: {doubled}"
        assert self.unrouted == 0
        ids = {doc["_id"] for doc in self.outgoing}
        assert queued <= ids, f"replies answered 202 but not stored: {sorted(queued - ids)[:10]}"
        assert {doc["_id"]: doc["status"] for doc in self.outgoing if doc["status"] != "sent"} == {}
        wrong = {i: self.deliveries[i] for i in ids if self.deliveries[i] != 1}
        assert not wrong, f"replies not delivered exactly once: {wrong}"
        assert set(self.deliveries) <= ids, f"deliveries of replies never stored: {set(self.deliveries) - ids}"
