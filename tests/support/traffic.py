"""Steady traffic for fault tests: customers writing in through a messenger that retries, an operator replying
through a console that retries under an Idempotency-Key, and the ledger that checks afterwards that every message
was stored once and every reply stored once and delivered once.

Both sides retry what got no answer (or a 5xx) the way the real ones do, so a request that a busy machine left
unanswered is a retry that the counts report, not a failure: what is promised is exactly-once after retries."""

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

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
    """The messenger side of the channel: posts each message until ingress answers 200, trying again after a
    failure or no answer with growing waits (first_retry, doubling up to max_retry), as Telegram and Meta do."""

    ingress_url: str
    provider: str = PROVIDER
    secret: str = SECRET
    first_retry: float = 0.5
    max_retry: float = 4.0
    give_up_after: float = 90.0
    answers: Counter[int] = field(default_factory=Counter)  # every attempt's answer; 0 is "no answer"
    accepted: dict[str, str] = field(default_factory=dict)  # provider message id -> sender
    retried: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._http = client(self.ingress_url, connections=64)

    async def close(self) -> None:
        await self._http.aclose()

    async def write(self, message_id: str, sender: str, text: str) -> None:
        raw, headers = signed(customer_message(message_id, text=text, sender=sender), self.secret)
        deadline = time.monotonic() + self.give_up_after
        wait = self.first_retry
        while True:
            try:
                status = (
                    await self._http.post(f"/webhooks/{self.provider}/receive", content=raw, headers=headers)
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
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.max_retry)

    def report(self) -> str:
        return f"webhook answers {dict(self.answers)} ({len(self.retried)} messages needed a retry)"


@dataclass
class Operator:
    """The operator answering, as the console does: each reply under an Idempotency-Key of its own, posted again
    under it after no answer or a 5xx (the router stores it once), with growing waits."""

    router_url: str
    token: str
    first_retry: float = 0.2
    max_retry: float = 2.0
    give_up_after: float = 90.0
    answers: Counter[int] = field(default_factory=Counter)  # every attempt's answer; 0 is "no answer"
    queued: dict[str, str] = field(default_factory=dict)  # reply id -> chat id, answered 202
    retried: int = 0  # replies that needed more than one post

    def __post_init__(self) -> None:
        self._http = client(self.router_url, self.token)

    async def close(self) -> None:
        await self._http.aclose()

    async def chats(self) -> list[str]:
        answer = await self._http.get("/api/chats", params={"limit": 200})
        return [chat["id"] for chat in answer.json()["items"]]

    async def reply(self, chat_id: str, text: str) -> str:
        """The reply's id, once the router answered 202."""
        headers = {"Idempotency-Key": uuid4().hex}
        deadline = time.monotonic() + self.give_up_after
        wait, tries = self.first_retry, 0
        while True:
            tries += 1
            try:
                answer = await self._http.post(f"/api/chats/{chat_id}/messages", json={"text": text}, headers=headers)
            except httpx.HTTPError:
                self.answers[0] += 1
            else:
                self.answers[answer.status_code] += 1
                if answer.status_code == 202:
                    reply_id: str = answer.json()["id"]
                    assert self.queued.setdefault(reply_id, chat_id) == chat_id
                    self.retried += tries > 1
                    return reply_id
                if answer.status_code < 500:
                    raise AssertionError(f"reply refused: {answer.status_code} {answer.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"a reply to {chat_id} was still not taken after {self.give_up_after:.0f} s")
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.max_retry)

    def report(self) -> str:
        return f"reply answers {dict(self.answers)} ({self.retried} replies needed a retry)"


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
        # Every reply was posted until answered, under its own key: one stored reply each, none besides.
        assert ids <= queued, f"replies stored that no 202 named (stored twice?): {sorted(ids - queued)[:10]}"
        assert {doc["_id"]: doc["status"] for doc in self.outgoing if doc["status"] != "sent"} == {}
        wrong = {i: self.deliveries[i] for i in ids if self.deliveries[i] != 1}
        assert not wrong, f"replies not delivered exactly once: {wrong}"
        assert set(self.deliveries) <= ids, f"deliveries of replies never stored: {set(self.deliveries) - ids}"
