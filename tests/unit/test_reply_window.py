"""The reply window: which reply may go when, per messenger, from the customer's last message."""

from datetime import UTC, datetime, timedelta

import pytest

from omni_providers import Channel, DeliveryPolicy
from omni_providers.meta import MessengerProvider, WhatsAppProvider
from omni_providers.telegram import TelegramProvider
from omni_providers.thirdparty import ThirdPartyProvider
from omni_providers.twilio import TwilioProvider
from omni_providers.window import decide_reply
from omni_runtime.settings import Settings

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def channel(provider: str, **settings: object) -> Channel:
    return Channel(id="c1", name="Acme", provider=provider, source="s1", queue_id="q1", settings=settings)


WHATSAPP = WhatsAppProvider("whatsapp", Settings())
TWILIO = TwilioProvider("twilio", Settings())
MESSENGER = MessengerProvider("messenger", Settings())


@pytest.mark.parametrize(("adapter", "name"), [(WHATSAPP, "whatsapp"), (TWILIO, "twilio")])
def test_whatsapp_free_text_within_24_hours_then_only_templates(adapter: object, name: str) -> None:
    last = NOW - 23 * HOUR
    inside = decide_reply(adapter, channel(name), last, NOW)
    assert (inside.verdict, inside.window_ends_at, inside.allowed) == ("allowed", last + 24 * HOUR, True)

    last = NOW - 25 * HOUR
    outside = decide_reply(adapter, channel(name), last, NOW)
    assert (outside.verdict, outside.window_ends_at, outside.allowed) == ("template_required", last + 24 * HOUR, False)
    assert outside.reason == (
        f"outside {name}'s 24-hour reply window, which closed at 2026-03-10T11:00:00Z: only a template may be sent"
    )
    template = decide_reply(adapter, channel(name), last, NOW, "template")
    assert (template.verdict, template.allowed) == ("allowed", True)


def test_the_window_ends_exactly_24_hours_after_the_customers_message() -> None:
    assert decide_reply(WHATSAPP, channel("whatsapp"), NOW - 24 * HOUR + timedelta(seconds=1), NOW).allowed
    assert not decide_reply(WHATSAPP, channel("whatsapp"), NOW - 24 * HOUR, NOW).allowed


def test_a_customer_who_never_wrote_gets_templates_only() -> None:
    decision = decide_reply(WHATSAPP, channel("whatsapp"), None, NOW)
    assert (decision.verdict, decision.window_ends_at) == ("template_required", None)
    assert decision.reason is not None and "has not written in this chat" in decision.reason
    assert decide_reply(WHATSAPP, channel("whatsapp"), None, NOW, "template").allowed


def test_a_messenger_clock_ahead_of_ours_does_not_stretch_or_shorten_the_window() -> None:
    ahead = decide_reply(WHATSAPP, channel("whatsapp"), NOW + HOUR, NOW)
    assert (ahead.verdict, ahead.window_ends_at) == ("allowed", NOW + 24 * HOUR)


def test_naive_times_are_utc() -> None:
    naive = (NOW - 25 * HOUR).replace(tzinfo=None)
    assert decide_reply(WHATSAPP, channel("whatsapp"), naive, NOW).verdict == "template_required"


def test_messenger_between_24_hours_and_7_days_goes_with_human_agent_where_the_channel_has_it() -> None:
    tagged = channel("messenger", human_agent_tag=True)
    last = NOW - 3 * 24 * HOUR
    decision = decide_reply(MESSENGER, tagged, last, NOW)
    assert (decision.verdict, decision.tag, decision.window_ends_at) == (
        "allowed_with_tag",
        "HUMAN_AGENT",
        last + 7 * 24 * HOUR,
    )
    assert decision.allowed
    fresh = decide_reply(MESSENGER, tagged, NOW - HOUR, NOW)
    assert (fresh.verdict, fresh.tag) == ("allowed", None)  # within 24 hours: a plain RESPONSE


def test_messenger_without_the_setting_or_past_7_days_is_closed_and_has_no_templates() -> None:
    last = NOW - 3 * 24 * HOUR
    untagged = decide_reply(MESSENGER, channel("messenger"), last, NOW)
    assert (untagged.verdict, untagged.allowed) == ("window_closed", False)
    assert untagged.reason == (
        "outside messenger's 24-hour reply window, which closed at 2026-03-08T12:00:00Z; the HUMAN_AGENT tag would "
        "allow replies until 2026-03-14T12:00:00Z, but this channel does not use it (settings.human_agent_tag)"
    )
    # Only a JSON true turns it on: "true" as text is a mistake, not a yes.
    assert not decide_reply(MESSENGER, channel("messenger", human_agent_tag="true"), last, NOW).allowed
    old = decide_reply(MESSENGER, channel("messenger", human_agent_tag=True), NOW - 8 * 24 * HOUR, NOW)
    assert old.verdict == "window_closed"
    assert old.reason is not None and old.reason.endswith("and the HUMAN_AGENT tag's, at 2026-03-09T12:00:00Z")
    template = decide_reply(MESSENGER, channel("messenger"), NOW - HOUR, NOW, "template")
    assert (template.verdict, template.reason) == ("templates_unsupported", "messenger channels do not send templates")


@pytest.mark.parametrize("adapter", [TelegramProvider("telegram", Settings()), ThirdPartyProvider("acme")])
def test_messengers_without_a_window_always_take_text_and_never_templates(adapter: object) -> None:
    name = str(getattr(adapter, "name", ""))
    for last in (None, NOW - 400 * 24 * HOUR):
        decision = decide_reply(adapter, channel(name), last, NOW)
        assert (decision.verdict, decision.window_ends_at) == ("allowed", None)
    assert decide_reply(adapter, channel(name), NOW, NOW, "template").verdict == "templates_unsupported"


def test_a_policy_can_be_given_directly() -> None:
    policy = DeliveryPolicy(reply_window=timedelta(hours=1))
    assert decide_reply(policy, channel("x"), NOW - 2 * HOUR, NOW).verdict == "window_closed"
