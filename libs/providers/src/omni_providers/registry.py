"""The provider registry: roles bound by provider tag, extended by third parties through entry points.

A package adds a messenger by declaring an entry point in the group `omni.providers` whose
object is a callable taking the provider name and returning a Provider.
"""

import logging
from collections.abc import Callable
from importlib.metadata import entry_points

from omni_providers.base import Provider
from omni_providers.thirdparty import ThirdPartyProvider

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "omni.providers"
# Names reserved for the messengers with their own webhook paths (API.md).
BUILTIN_PROVIDERS = ("telegram", "messenger", "whatsapp", "twilio")

ProviderFactory = Callable[[str], Provider]


class UnknownProvider(LookupError):
    pass


class ProviderRegistry:
    def __init__(self, factories: dict[str, ProviderFactory] | None = None) -> None:
        self._factories: dict[str, ProviderFactory] = dict(factories or {})
        self._instances: dict[str, Provider] = {}

    @classmethod
    def from_entry_points(cls) -> "ProviderRegistry":
        factories: dict[str, ProviderFactory] = {}
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            factories[entry.name] = entry.load()
            log.info("provider plugged in", extra={"provider": entry.name, "target": entry.value})
        return cls(factories)

    def get(self, name: str) -> Provider:
        """The adapter for `name`; names nobody registered speak the third-party unified format."""
        if name in BUILTIN_PROVIDERS and name not in self._factories:
            raise UnknownProvider(f"provider {name} is not available in this build")
        if name not in self._instances:
            factory = self._factories.get(name, ThirdPartyProvider)
            self._instances[name] = factory(name)
        return self._instances[name]

    def is_builtin(self, name: str) -> bool:
        return name in BUILTIN_PROVIDERS
