"""Provider adapters (one per messenger) and the registry that finds them by provider name."""

from omni_providers.base import Channel, InboundRequest, Provider, SendResult, WebhookRejected
from omni_providers.registry import BUILTIN_PROVIDERS, ProviderRegistry, UnknownProvider

__all__ = [
    "BUILTIN_PROVIDERS",
    "Channel",
    "InboundRequest",
    "Provider",
    "ProviderRegistry",
    "SendResult",
    "UnknownProvider",
    "WebhookRejected",
]
