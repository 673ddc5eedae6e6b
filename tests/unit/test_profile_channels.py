"""The profiles service's channels: read once for a stream of requests, read again after their time-to-live, and a
missing one read again each time (an admin may add it)."""

from omni_profiles.profiles import KeptChannels
from omni_providers import Channel

CHANNEL = Channel(id="ch-1", name="Acme chat", provider="acme", source="1", queue_id="q", settings={})


class Store:
    def __init__(self, *channels: Channel) -> None:
        self.channels = {channel.id: channel for channel in channels}
        self.reads: list[str] = []

    async def read(self, channel_id: str) -> Channel | None:
        self.reads.append(channel_id)
        return self.channels.get(channel_id)


async def test_a_channel_is_read_once_within_its_time_to_live_and_again_after_it() -> None:
    store, now = Store(CHANNEL), [100.0]
    kept = KeptChannels(store.read, ttl=2.0, clock=lambda: now[0])

    assert [await kept.get("ch-1") for _ in range(50)] == [CHANNEL] * 50
    assert store.reads == ["ch-1"]

    renamed = Channel(id="ch-1", name="Acme chat 2", provider="acme", source="1", queue_id="q", settings={})
    store.channels["ch-1"] = renamed
    now[0] += 2.0
    assert await kept.get("ch-1") == renamed
    assert store.reads == ["ch-1", "ch-1"]


async def test_a_missing_channel_is_read_again_each_time() -> None:
    store = Store()
    kept = KeptChannels(store.read, ttl=2.0, clock=lambda: 0.0)

    assert await kept.get("ch-9") is None
    store.channels["ch-9"] = CHANNEL
    assert await kept.get("ch-9") == CHANNEL
    assert store.reads == ["ch-9", "ch-9"]
