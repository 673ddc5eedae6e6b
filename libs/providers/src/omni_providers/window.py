"""Whether a reply may go now, by the messenger's customer-service window: pure, the same for the router (at
`POST /api/chats/{id}/messages`) and the dispatcher (at send time, when the window may have closed meanwhile).

The window runs from the customer's last message as the messenger timed it (UnifiedMessage.sent_at). Free text
goes within `reply_window`; after it, a provider with a WindowTag lets it go tagged for longer (Messenger's
HUMAN_AGENT, 7 days, where the channel enables it), and a provider with templates takes only templates.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from omni_providers.base import Channel, DeliveryPolicy, delivery_policy

ReplyKind = Literal["text", "template"]
Verdict = Literal["allowed", "allowed_with_tag", "template_required", "window_closed", "templates_unsupported"]


@dataclass(frozen=True)
class ReplyDecision:
    """`verdict`: `allowed`; `allowed_with_tag` (send with `tag`); `template_required` (free text refused, a
    template would go); `window_closed` (nothing would go); `templates_unsupported` (a template on a messenger
    without them). `window_ends_at`: when free text stops (stopped) being allowed, or for a tagged reply when the
    tag stops; None where no window applies. `reason`: a sentence for an answer or a `failure_reason`."""

    verdict: Verdict
    window_ends_at: datetime | None = None
    tag: str | None = None
    reason: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict in ("allowed", "allowed_with_tag")


def decide_reply(
    provider: object | DeliveryPolicy,
    channel: Channel,
    last_customer_message_at: datetime | None,
    now: datetime,
    kind: ReplyKind = "text",
) -> ReplyDecision:
    """May a reply of `kind` go to the customer of `channel` at `now`? `provider`: the channel's adapter (or its
    DeliveryPolicy); `last_customer_message_at`: the messenger's time of the customer's last message in the chat
    (None: the customer never wrote)."""
    policy = provider if isinstance(provider, DeliveryPolicy) else delivery_policy(provider)
    name = channel.provider
    if kind == "template":
        if not policy.templates:
            return ReplyDecision("templates_unsupported", reason=f"{name} channels do not send templates")
        ends = _end(last_customer_message_at, policy.reply_window, now)
        return ReplyDecision("allowed", window_ends_at=ends)
    window = policy.reply_window
    if window is None:
        return ReplyDecision("allowed")
    hours = f"{window.total_seconds() / 3600:g}-hour"
    if last_customer_message_at is None:
        never = f"outside {name}'s {hours} reply window: the customer has not written in this chat"
        return _closed(policy, None, never)
    last = min(_aware(last_customer_message_at), now)  # a messenger clock ahead of ours does not shorten the window
    ends = last + window
    if now < ends:
        return ReplyDecision("allowed", window_ends_at=ends)
    closed = f"outside {name}'s {hours} reply window, which closed at {_iso(ends)}"
    tag = policy.window_tag
    if tag is None:
        return _closed(policy, ends, closed)
    tag_ends = last + tag.lasts
    if channel.settings.get(tag.setting) is not True:
        why = f"{closed}; the {tag.tag} tag would allow replies until {_iso(tag_ends)}, but this channel does not use "
        return _closed(policy, ends, f"{why}it (settings.{tag.setting})")
    if now < tag_ends:
        return ReplyDecision("allowed_with_tag", window_ends_at=tag_ends, tag=tag.tag)
    return _closed(policy, ends, f"{closed}, and the {tag.tag} tag's, at {_iso(tag_ends)}")


def _closed(policy: DeliveryPolicy, ends: datetime | None, reason: str) -> ReplyDecision:
    if policy.templates:
        return ReplyDecision("template_required", window_ends_at=ends, reason=f"{reason}: only a template may be sent")
    return ReplyDecision("window_closed", window_ends_at=ends, reason=reason)


def _end(last: datetime | None, window: timedelta | None, now: datetime) -> datetime | None:
    if last is None or window is None:
        return None
    return min(_aware(last), now) + window


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
