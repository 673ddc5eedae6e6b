"""Contracts tolerate what newer producers add and keep their shape."""

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from omni_contracts import SCHEMA_VERSION, MessageReceived, MessageSent, RouterUpdate, UnifiedMessage


def _message() -> UnifiedMessage:
    return UnifiedMessage(
        provider="acme",
        channel_id="c1",
        provider_message_id="m1",
        sender="s1",
        recipient="bot",
        sent_at="2026-01-01T00:00:00Z",
        text="hi",
    )


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    data = json.loads(MessageReceived(message=_message()).model_dump_json())
    data["added_in_v2"] = {"anything": 1}
    data["message"]["reactions"] = ["+1"]
    parsed = MessageReceived.model_validate_json(json.dumps(data))
    assert parsed.message.text == "hi"
    assert parsed.schema_version == SCHEMA_VERSION


def test_contracts_are_frozen() -> None:
    with pytest.raises(ValidationError):
        _message().text = "changed"  # type: ignore[misc]


def test_router_updates_are_told_apart_by_kind() -> None:
    sent = MessageSent(message_id="m", chat_id="c").model_dump_json()
    parsed = TypeAdapter(RouterUpdate).validate_json(sent)
    assert isinstance(parsed, MessageSent)
    with pytest.raises(ValidationError):
        TypeAdapter(RouterUpdate).validate_json(json.dumps({"kind": "message.unknown"}))
