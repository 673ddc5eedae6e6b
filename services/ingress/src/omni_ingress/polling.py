"""Telegram long polling: one poller per channel in `mode: polling`, fetching with getUpdates.

Each update's messages are published with publisher confirms, and only then is the offset (its
update_id + 1) stored in `telegram_offsets`; the next getUpdates with that offset confirms the update
to Telegram. A restart therefore starts after the last queued update: nothing lost, nothing fetched
twice. A lease on the offset document keeps one poller per channel when several ingress processes run.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
from pymongo.errors import DuplicateKeyError, PyMongoError

from omni_contracts import MessageReceived
from omni_ingress.channels import ChannelDirectory
from omni_providers import Channel, ProviderRegistry, UnknownProvider, WebhookRejected
from omni_providers.telegram import PollingConflict, TelegramProvider, update_id_of
from omni_runtime.broker import Broker
from omni_runtime.database import Database
from omni_runtime.errors import BrokerUnavailable, PermanentError, RetryLater
from omni_runtime.settings import Settings

log = logging.getLogger(__name__)

OFFSETS = "telegram_offsets"
PROVIDER = "telegram"


@dataclass(frozen=True)
class PollingConfig:
    timeout_seconds: int
    discovery_seconds: float
    backoff_start: float = 1.0
    backoff_cap: float = 30.0

    @property
    def lease_seconds(self) -> float:
        # Outlives one long poll and the batch after it; a crashed holder's channel is taken over after it.
        return self.timeout_seconds + 30.0


class Offsets:
    """`telegram_offsets`: per channel the next update_id to fetch, and which poller holds the channel."""

    def __init__(self, db: Database, holder: str) -> None:
        self._collection = db[OFFSETS]
        self._holder = holder

    async def claim(self, channel_id: str, lease_seconds: float) -> bool:
        """Take or renew the channel's lease; False while another poller holds it."""
        now = time.time()
        try:
            await self._collection.update_one(
                {"_id": channel_id, "$or": [{"holder": self._holder}, {"lease_until": {"$lt": now}}]},
                {"$set": {"holder": self._holder, "lease_until": now + lease_seconds}, "$setOnInsert": {"offset": 0}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the document exists and the lease is someone else's
        return True

    async def offset(self, channel_id: str) -> int:
        doc = await self._collection.find_one({"_id": channel_id}, {"offset": 1})
        return int((doc or {}).get("offset") or 0)

    async def advance(self, channel_id: str, offset: int) -> bool:
        """Store the offset if this poller still holds the channel; never moves it backwards."""
        result = await self._collection.update_one(
            {"_id": channel_id, "holder": self._holder}, {"$max": {"offset": offset}}
        )
        return result.matched_count == 1

    async def release(self, channel_id: str) -> None:
        await self._collection.update_one({"_id": channel_id, "holder": self._holder}, {"$set": {"lease_until": 0}})


class Backoff:
    """Exponential waits from `start`, capped; reset after a success."""

    def __init__(self, start: float, cap: float) -> None:
        self._start, self._cap, self._next = start, cap, start

    def next(self, hint: float | None = None) -> float:
        wait = max(self._next, hint or 0.0)
        self._next = min(self._next * 2, self._cap)
        return min(wait, max(self._cap, hint or 0.0))

    def reset(self) -> None:
        self._next = self._start


class ChannelPoller:
    def __init__(
        self,
        channel: Channel,
        provider: TelegramProvider,
        offsets: Offsets,
        db: Database,
        broker: Broker,
        http: httpx.AsyncClient,
        config: PollingConfig,
    ) -> None:
        self.channel = channel
        self._provider = provider
        self._offsets = offsets
        self._db = db
        self._broker = broker
        self._http = http
        self._config = config
        self._backoff = Backoff(config.backoff_start, config.backoff_cap)
        self._stopping = asyncio.Event()
        # True from getUpdates' answer until its updates are queued and the offset stored: not to be cancelled.
        self._busy = False
        self._error_shown = True  # an error from an earlier run may be on the channel: cleared on first success
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"telegram-poller-{self.channel.id}")

    async def stop(self, grace: float = 10.0) -> None:
        """Let a batch in hand finish (its offset stored), cancel a wait, give the lease back."""
        self._stopping.set()
        if self._task is None:
            return
        if not self._busy:
            self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task})
        with contextlib.suppress(PyMongoError):
            await self._offsets.release(self.channel.id)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not await self._offsets.claim(self.channel.id, self._config.lease_seconds):
                    await self._sleep(self._config.timeout_seconds + self._config.backoff_start)
                    continue
                await self.poll_once()
                self._backoff.reset()
            except PollingConflict as exc:
                await self._fail(conflict_detail(str(exc)))
            except PermanentError as exc:
                await self._fail(str(exc))
            except RetryLater as exc:
                log.warning("telegram polling failed", extra={"channel_id": self.channel.id, "cause": str(exc)})
                await self._sleep(self._backoff.next(exc.retry_after))
            except (BrokerUnavailable, PyMongoError) as exc:
                cause = f"{type(exc).__name__}: {exc}"
                log.warning("telegram updates not queued", extra={"channel_id": self.channel.id, "cause": cause})
                await self._sleep(self._backoff.next())
            except Exception:
                # A poller that died would silently stop a channel: log the fault and keep going, slower.
                log.exception("telegram poller fault", extra={"channel_id": self.channel.id})
                await self._sleep(self._backoff.next())

    async def poll_once(self) -> None:
        """One getUpdates round: fetch from the stored offset, queue each update's messages, then store its offset."""
        offset = await self._offsets.offset(self.channel.id)
        updates = await self._provider.get_updates(self._http, self.channel, offset, self._config.timeout_seconds)
        self._busy = True
        try:
            for update in updates:
                if not await self._deliver(update, offset):
                    return
        finally:
            self._busy = False
        if self._error_shown:
            await self._db.channels.update_one({"_id": self.channel.id}, {"$unset": {"polling_error": ""}})
            self._error_shown = False

    async def _deliver(self, update: Any, offset: int) -> bool:
        """Queue one update's messages, then move the offset past it; False when the lease was lost."""
        update_id = update_id_of(update)
        if update_id is None or update_id < offset:
            return True  # not an update Telegram could send, or one already confirmed
        try:
            messages = self._provider.convert(self.channel, update)
        except WebhookRejected as exc:
            # Never confirming it would stall the channel behind it for good: it is dropped, and said so.
            log.warning(
                "telegram update dropped",
                extra={"channel_id": self.channel.id, "update_id": update_id, "cause": exc.detail},
            )
            messages = []
        for message in messages:
            await self._broker.publish_event(MessageReceived(message=message))
        return await self._offsets.advance(self.channel.id, update_id + 1)

    async def _fail(self, detail: str) -> None:
        """A misconfigured channel: the reason is put on the channel document, and polling tries again later."""
        log.warning("telegram polling refused", extra={"channel_id": self.channel.id, "cause": detail})
        with contextlib.suppress(PyMongoError):
            await self._db.channels.update_one(
                {"_id": self.channel.id},
                {"$set": {"polling_error": {"detail": detail, "at": datetime.now(UTC).isoformat()}}},
            )
            self._error_shown = True
        await self._sleep(self._backoff.next())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def conflict_detail(reason: str) -> str:
    """What to do about a 409: Telegram refuses getUpdates while a webhook is set or another client polls."""
    if "webhook" in reason.lower():
        return (
            f"{reason}. A webhook is set for this bot: register the channel again (in mode polling that deletes "
            "the webhook) or switch the channel to webhook mode"
        )
    return f"{reason}. Another program is polling this bot with getUpdates: only one may, stop the other one"


class TelegramPolling:
    """Keeps one ChannelPoller per active polling channel, looking channels up every `discovery_seconds`."""

    def __init__(
        self,
        provider: TelegramProvider,
        channels: ChannelDirectory,
        db: Database,
        broker: Broker,
        http: httpx.AsyncClient,
        config: PollingConfig,
    ) -> None:
        self._provider = provider
        self._channels = channels
        self._db = db
        self._broker = broker
        self._http = http
        self._config = config
        self._offsets = Offsets(db, holder=uuid4().hex)
        self.pollers: dict[str, ChannelPoller] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._discover(), name="telegram-polling-discovery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        await asyncio.gather(*(poller.stop() for poller in self.pollers.values()))
        self.pollers.clear()

    async def sync(self) -> None:
        """Start pollers for new polling channels, stop those of channels gone, refresh the rest's settings."""
        found = {
            channel.id: channel
            for channel in await self._channels.of_provider(PROVIDER)
            if channel.settings.get("mode") == "polling"
        }
        for channel_id in [known for known in self.pollers if known not in found]:
            await self.pollers.pop(channel_id).stop()
        for channel_id, channel in found.items():
            poller = self.pollers.get(channel_id)
            if poller is not None:
                poller.channel = channel
                continue
            poller = ChannelPoller(
                channel, self._provider, self._offsets, self._db, self._broker, self._http, self._config
            )
            self.pollers[channel_id] = poller
            poller.start()

    async def _discover(self) -> None:
        while True:
            try:
                await self.sync()
            except PyMongoError as exc:
                log.warning("telegram channels not looked up", extra={"cause": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(self._config.discovery_seconds)


@asynccontextmanager
async def telegram_polling(
    registry: ProviderRegistry,
    channels: ChannelDirectory,
    db: Database,
    broker: Broker,
    http: httpx.AsyncClient,
    settings: Settings,
) -> AsyncIterator[TelegramPolling | None]:
    """Run the pollers for the life of ingress; nothing runs when this build has no Telegram adapter."""
    try:
        provider = registry.get(PROVIDER)
    except UnknownProvider:
        provider = None
    if not isinstance(provider, TelegramProvider):
        yield None
        return
    config = PollingConfig(settings.telegram_poll_timeout_seconds, settings.telegram_poll_discovery_seconds)
    polling = TelegramPolling(provider, channels, db, broker, http, config)
    await polling.start()
    try:
        yield polling
    finally:
        await polling.stop()
