"""The reference's example `Test` provider, as an installable package plugged in through an entry point.

It receives and sends the third-party unified format and looks senders up in its messenger's
profile API (`settings.profile_api_url` + sender id -> `{"first_name", "last_name"}`), as the
reference's TestProfileDataProvider does. Its pyproject declares:

    [project.entry-points."omni.providers"]
    test = "omni_example_test_provider:TestProvider"
"""

from dataclasses import dataclass

import httpx

from omni_providers import Channel
from omni_providers.thirdparty import ThirdPartyProvider
from omni_runtime.settings import Settings


@dataclass(frozen=True)
class TestProfile:
    name: str | None
    photo_url: str | None = None


class TestProvider(ThirdPartyProvider):
    """Receiving and sending as any third-party provider; profiles from the messenger's API."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        super().__init__(name, settings)

    async def fetch_profile(self, http: httpx.AsyncClient, channel: Channel, external_id: str) -> TestProfile | None:
        base = channel.settings.get("profile_api_url")
        if not base:
            return None
        try:
            answer = await http.get(f"{str(base).rstrip('/')}/{external_id}")
            answer.raise_for_status()
            data = answer.json()
        except (httpx.HTTPError, ValueError):
            return None  # the reference falls back to "New contact <channel>-<sender id>"
        if not isinstance(data, dict):
            return None
        name = " ".join(str(part) for part in (data.get("first_name"), data.get("last_name")) if part)
        return TestProfile(name=name or None)
