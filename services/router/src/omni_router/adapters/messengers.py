"""The providers (libs/providers) as the admin needs them: what a channel's settings must hold, and registering a
channel with its messenger (the reference's IMessengerRegistrationWorker)."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from omni_providers import Channel as ProviderChannel
from omni_providers import ProviderRegistry, Registrar, UnknownProvider
from omni_providers.thirdparty import is_http_url
from omni_providers.window import decide_reply
from omni_router.domain.errors import Invalid
from omni_router.domain.model import Channel
from omni_router.domain.replies import ReplyWindow
from omni_router.service_layer.ports import Registration
from omni_runtime.errors import PermanentError, RetryLater

# What a channel of a provider without built-in support (the third-party unified format) must have.
THIRD_PARTY_SETTINGS = ("secret", "outgoing_url")


class ProviderMessengers:
    def __init__(self, registry: ProviderRegistry, http: httpx.AsyncClient) -> None:
        self._registry = registry
        self._http = http

    def check_channel(self, provider: str, settings: Mapping[str, Any]) -> None:
        try:
            self._registry.get(provider)
        except UnknownProvider as exc:
            raise Invalid("invalid_body", str(exc)) from None
        if not self._registry.is_builtin(provider):
            missing = [k for k in THIRD_PARTY_SETTINGS if not settings.get(k)]
            if missing:
                raise Invalid("invalid_body", f"settings need {', '.join(missing)}")
            if not is_http_url(settings["outgoing_url"]):
                raise Invalid("invalid_body", "settings.outgoing_url must be an http or https URL")

    async def register(self, channel: Channel) -> Registration:
        try:
            provider = self._registry.get(channel.provider)
        except UnknownProvider as exc:
            raise Invalid("unknown_provider", str(exc)) from None
        if not isinstance(provider, Registrar):
            return Registration(ok=True, detail=f"{channel.provider} channels need no registration")
        try:
            outcome = await provider.register(self._http, _provider_channel(channel))
        except (RetryLater, PermanentError) as exc:
            return Registration(ok=False, detail=str(exc))
        return Registration(outcome.ok, outcome.detail, outcome.settings_update)

    def reply_window(
        self, channel: Channel, last_customer_message_at: datetime | None, now: datetime, kind: str
    ) -> ReplyWindow:
        try:
            provider = self._registry.get(channel.provider)
        except UnknownProvider as exc:
            raise Invalid("unknown_provider", str(exc)) from None
        return reply_window(provider, channel, last_customer_message_at, now, kind)


def reply_window(
    provider: object, channel: Channel, last_customer_message_at: datetime | None, now: datetime, kind: str
) -> ReplyWindow:
    """`omni_providers.window.decide_reply`, the rule the dispatcher applies again at send time."""
    decision = decide_reply(
        provider,
        _provider_channel(channel),
        last_customer_message_at,
        now,
        "template" if kind == "template" else "text",
    )
    return ReplyWindow(decision.verdict, decision.window_ends_at, decision.reason)


def _provider_channel(channel: Channel) -> ProviderChannel:
    return ProviderChannel(
        id=channel.id,
        name=channel.name,
        provider=channel.provider,
        source=channel.source,
        queue_id=channel.queue_id or "",
        settings=dict(channel.settings),
        is_active=channel.is_active,
    )
