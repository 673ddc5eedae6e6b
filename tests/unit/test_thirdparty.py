"""The third-party provider: signature scheme, payload conversion and send classification."""

import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omni_providers import Channel, InboundRequest, WebhookRejected
from omni_providers.signatures import hmac_sha256_signature, verify_hmac_sha256
from omni_providers.thirdparty import ThirdPartyProvider

CHANNEL = Channel(id="c1", name="Acme", provider="acme", source="bot-1", queue_id="q", settings={"secret": "k3y"})


def test_signature_matches_an_independent_computation() -> None:
    body = b'{"message_id":"1"}'
    expected = "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert hmac_sha256_signature("k3y", body) == expected
    assert verify_hmac_sha256("k3y", body, expected)
    assert not verify_hmac_sha256("k3y", body + b" ", expected)
    assert not verify_hmac_sha256("k3y", body, None)
    assert not verify_hmac_sha256("", body, hmac_sha256_signature("", body))


def test_verify_reads_the_header_case_insensitively() -> None:
    body = b"{}"
    request = InboundRequest(body, {"x-omni-signature": hmac_sha256_signature("k3y", body)}, "http://x")
    assert ThirdPartyProvider("acme").verify(CHANNEL, request)


def test_parse_builds_a_unified_message() -> None:
    payload = {
        "message_id": 42,
        "sender": "cust",
        "recipient": "bot-1",
        "timestamp": "2026-03-01T10:00:00",
        "type": "image",
        "text": "see this",
        "attachments": [{"url": "http://files/x.png", "content_type": "image/png", "file_name": "x.png"}],
    }
    [message] = ThirdPartyProvider("acme").parse(CHANNEL, payload)
    assert message.provider_message_id == "42"
    assert message.sent_at.tzinfo is not None
    assert message.attachments[0].url == "http://files/x.png"
    assert message.channel_id == "c1"


@pytest.mark.parametrize(
    "change",
    [{"message_id": ""}, {"sender": None}, {"timestamp": "soon"}, {"type": "hologram"}, {"text": None}],
)
def test_parse_rejects_bad_payloads_with_400(change: dict[str, object]) -> None:
    payload = {"message_id": "1", "sender": "s", "recipient": "bot-1", "timestamp": 1, "text": "t", **change}
    with pytest.raises(WebhookRejected) as caught:
        ThirdPartyProvider("acme").parse(CHANNEL, payload)
    assert caught.value.status == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_is_converted_or_rejected_with_400_never_crashes(payload: object) -> None:
    provider = ThirdPartyProvider("acme")
    request = InboundRequest(json.dumps(payload).encode(), {}, "http://x")
    try:
        provider.channel_source(request, payload)
        messages = provider.parse(CHANNEL, payload)
    except WebhookRejected as rejected:
        assert rejected.status == 400
    else:
        assert all(m.provider_message_id for m in messages)


def test_the_signature_is_hmac_sha256_as_rfc_4231_gives_it() -> None:
    assert hmac_sha256_signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
