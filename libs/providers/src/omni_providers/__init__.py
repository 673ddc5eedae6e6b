"""Provider adapters (one per messenger) and the registry that finds them by provider name."""

from omni_providers.base import (
    Channel,
    ChannelLookup,
    DeliveryPolicy,
    Inbound,
    InboundRequest,
    Provider,
    Registrar,
    Registration,
    SendResult,
    WebhookRejected,
    WebhookReply,
    delivery_policy,
)
from omni_providers.registry import BUILTIN_PROVIDERS, ProviderRegistry, UnknownProvider

__all__ = [
    "BUILTIN_PROVIDERS",
    "Channel",
    "ChannelLookup",
    "DeliveryPolicy",
    "Inbound",
    "InboundRequest",
    "Provider",
    "ProviderRegistry",
    "Registrar",
    "Registration",
    "SendResult",
    "UnknownProvider",
    "WebhookRejected",
    "WebhookReply",
    "delivery_policy",
]
