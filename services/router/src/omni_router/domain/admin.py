"""What an admin may store: queues, operators and channels as created, and what a change (PATCH) may touch.

A change is checked as creation checks it: the stored object with the change applied, by the same model.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from omni_router.domain.access import QueueAction
from omni_router.domain.hours import BusinessHours, Csat

AdminKind = Literal["queues", "operators", "channels"]
ADMIN_KINDS: tuple[AdminKind, ...] = ("queues", "operators", "channels")


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    routing_rule: str = "to_all"
    # Whole minutes as before; fractions are accepted too (0.5 is 30 s), which is what tests use.
    completion_timeout_minutes: int | float | None = Field(default=None, gt=0, le=60 * 24 * 30)
    operator_ids: list[str] = Field(default_factory=list)
    # What happens to the chats an operator holds when they go offline: kept, or back to the queue.
    on_operator_offline: Literal["keep", "return"] = "keep"
    # How long an offer waits for an accept before it moves on; unset: OFFER_TIMEOUT_SECONDS.
    offer_timeout_seconds: float | None = Field(default=None, gt=0, le=24 * 3600)
    # The actions its operators may take (GetChatActions offers only these); unset: all.
    actions: list[QueueAction] | None = None
    # None: always open. What a new chat's customer is told once, inside and outside them (None: nothing).
    business_hours: BusinessHours | None = None
    greeting_text: str | None = Field(default=None, min_length=1, max_length=4096)
    out_of_hours_text: str | None = Field(default=None, min_length=1, max_length=4096)
    csat: Csat | None = None


class OperatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    max_chats: int = Field(default=5, ge=1, le=1000)
    role: Literal["operator", "supervisor"] = "operator"


class OperatorChange(OperatorSettings):
    """What PATCH validates: the operator as created, plus the status an admin may set."""

    status: Literal["online", "busy", "offline"] = "offline"


class ChannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    provider: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")
    source: str = Field(min_length=1, max_length=256)
    queue_id: str
    settings: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True

    @field_validator("settings")
    @classmethod
    def _flags_are_booleans(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """`human_agent_tag` (Messenger: replies 24 h to 7 days with HUMAN_AGENT) counts only as JSON `true`."""
        if "human_agent_tag" in settings and not isinstance(settings["human_agent_tag"], bool):
            raise ValueError("settings.human_agent_tag must be true or false")
        return settings


PATCHABLE: dict[AdminKind, frozenset[str]] = {
    "queues": frozenset(
        {
            "name",
            "routing_rule",
            "completion_timeout_minutes",
            "operator_ids",
            "on_operator_offline",
            "offer_timeout_seconds",
            "actions",
            "business_hours",
            "greeting_text",
            "out_of_hours_text",
            "csat",
        }
    ),
    "operators": frozenset({"name", "max_chats", "role", "status"}),
    "channels": frozenset({"name", "queue_id", "settings", "is_active"}),
}
# What a supervisor may change of a queue from the console (the rest is the admin's).
SUPERVISOR_QUEUE_FIELDS = frozenset({"business_hours", "greeting_text", "out_of_hours_text", "csat"})
# PATCH validates the stored object with the change applied, with the model creation uses.
PATCH_MODELS: dict[AdminKind, type[BaseModel]] = {
    "queues": QueueSettings,
    "operators": OperatorChange,
    "channels": ChannelSettings,
}
