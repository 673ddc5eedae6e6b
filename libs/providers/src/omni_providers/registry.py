"""The provider registry: roles bound by provider tag, extended by third parties through entry points.

A package adds a messenger by declaring an entry point in the group `omni.providers` whose
object is a callable taking the provider name and the service's Settings and returning a Provider.
"""

import importlib
import importlib.metadata
import importlib.util
import logging
from collections.abc import Callable

from omni_providers.base import Provider
from omni_providers.thirdparty import ThirdPartyProvider
from omni_runtime.settings import Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "omni.providers"
# The messengers with their own webhook paths (docs/api.md), and where their adapters live.
BUILTIN_ADAPTERS = {
    "telegram": "omni_providers.telegram:TelegramProvider",
    "messenger": "omni_providers.meta:MessengerProvider",
    "whatsapp": "omni_providers.meta:WhatsAppProvider",
    "twilio": "omni_providers.twilio:TwilioProvider",
}
BUILTIN_PROVIDERS = tuple(BUILTIN_ADAPTERS)

ProviderFactory = Callable[[str, Settings], Provider]


class UnknownProvider(LookupError):
    pass


def _builtin(name: str) -> ProviderFactory | None:
    module, _, attribute = BUILTIN_ADAPTERS[name].partition(":")
    if importlib.util.find_spec(module) is None:
        return None
    factory: ProviderFactory = getattr(importlib.import_module(module), attribute)
    return factory


class ProviderRegistry:
    def __init__(self, settings: Settings | None = None, factories: dict[str, ProviderFactory] | None = None) -> None:
        self._settings = settings or Settings()
        self._factories: dict[str, ProviderFactory] = dict(factories or {})
        self._instances: dict[str, Provider] = {}

    @classmethod
    def from_entry_points(cls, settings: Settings | None = None) -> "ProviderRegistry":
        factories: dict[str, ProviderFactory] = {}
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            factories[entry.name] = entry.load()
            log.info("provider plugged in", extra={"provider": entry.name, "target": entry.value})
        return cls(settings, factories)

    def get(self, name: str) -> Provider:
        """The adapter for `name`; names nobody registered speak the third-party unified format.

        Only registered and built-in adapters are kept: any webhook path names a provider before anything is
        checked, so keeping every name would let strangers grow the process without end. The third-party
        adapter holds nothing but its name, so making one per call costs nothing."""
        found = self._instances.get(name)
        if found is not None:
            return found
        factory = self._factories.get(name)
        if factory is None and name in BUILTIN_ADAPTERS:
            factory = _builtin(name)
            if factory is None:
                raise UnknownProvider(f"provider {name} is not available in this build")
        if factory is None:
            return ThirdPartyProvider(name, self._settings)
        self._instances[name] = found = factory(name, self._settings)
        return found

    def is_builtin(self, name: str) -> bool:
        return name in BUILTIN_ADAPTERS
