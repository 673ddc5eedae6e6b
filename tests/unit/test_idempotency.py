"""What an Idempotency-Key may look like, and when two requests under one key are the same request."""

import pytest
from starlette.requests import Request

from omni_router.domain.replies import fingerprint
from omni_router.entrypoints.operator_api import MAX_KEY_LENGTH as MAX_LENGTH
from omni_router.entrypoints.operator_api import idempotency_key
from omni_runtime.web import ApiError


def request_with(key: bytes | None) -> Request:
    headers = [(b"idempotency-key", key)] if key is not None else []
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


@pytest.mark.parametrize("key", [b"0b7c6d0e-3f1a-4c6e-9a51-2f3c1d7e8a90", b"x", b"A" * MAX_LENGTH, b"reply:7/chat#2~!"])
def test_visible_ascii_keys_up_to_255_characters_are_taken_as_given(key: bytes) -> None:
    assert idempotency_key(request_with(key)) == key.decode()


def test_no_header_is_no_key() -> None:
    assert idempotency_key(request_with(None)) is None


@pytest.mark.parametrize("key", [b"", b"A" * (MAX_LENGTH + 1), b"two words", b"tab\tin", "ключ".encode()])
def test_other_keys_are_refused_with_400(key: bytes) -> None:
    with pytest.raises(ApiError) as refused:
        idempotency_key(request_with(key))
    assert (refused.value.status, refused.value.error) == (400, "invalid_idempotency_key")


def test_the_same_request_is_the_same_whatever_its_key_order_and_only_then() -> None:
    body = {"text": "On its way", "attachments": [{"file_id": "f-1"}]}
    same = fingerprint("chat-1", {"attachments": [{"file_id": "f-1"}], "text": "On its way"})
    assert fingerprint("chat-1", body) == same
    assert fingerprint("chat-2", body) != same
    assert fingerprint("chat-1", {**body, "text": "On its way!"}) != same
    assert fingerprint("chat-1", {**body, "attachments": []}) != same
