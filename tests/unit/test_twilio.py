"""WhatsApp through Twilio: the X-Twilio-Signature scheme, webhook conversion, and the REST calls against the simulator."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omni_contracts import Attachment, MessageOutgoing
from omni_providers import Channel, ChannelLookup, InboundRequest, WebhookRejected, delivery_policy
from omni_providers.signatures import TWILIO_SIGNATURE_HEADER, twilio_signature, verify_twilio_signature
from omni_providers.twilio import EMPTY_TWIML, TwilioProvider, convert, json_fields
from omni_runtime.errors import PermanentError, RetryLater
from omni_runtime.settings import Settings
from tests.support.stack import Simulator

ACCOUNT = "AC" + "0" * 32
TOKEN = "twilio-auth-token-1"
NUMBER = "+14155238886"
CUSTOMER = "+4915112345678"
PUBLIC = "https://omni.example.com"
CHANNEL = Channel(
    id="ch1",
    name="WhatsApp",
    provider="twilio",
    source=NUMBER,
    queue_id="q1",
    settings={"account_sid": ACCOUNT, "auth_token": TOKEN},
)
URL = f"{PUBLIC}/webhooks/twilio/{CHANNEL.id}"

# Twilio's own examples: the docs' request (auth token 12345) and the vectors of twilio-python's validator tests.
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
DOC_BODY = b'{"property": "value", "boolean": true}'
DOC_BODY_URL = DOC_URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
DOC_BODY_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="


class Channels(ChannelLookup):
    """The channel directory of ingress, over a fixed list."""

    def __init__(self, *channels: Channel) -> None:
        self._channels = channels

    async def by_id(self, provider: str, channel_id: str) -> Channel | None:
        return next((c for c in self._channels if c.provider == provider and c.id == channel_id), None)

    async def by_source(self, provider: str, source: str) -> Channel | None:
        return next((c for c in self._channels if c.provider == provider and c.source == source), None)

    async def of_provider(self, provider: str) -> list[Channel]:
        return [c for c in self._channels if c.provider == provider]


def provider(api: str = "https://api.twilio.com") -> TwilioProvider:
    return TwilioProvider("twilio", Settings(twilio_api_url=api, public_base_url=PUBLIC))


def independent_signature(token: str, url: str, fields: list[tuple[str, str]]) -> str:
    """The documented algorithm written out again, so the helper is not checked against itself."""
    data = url
    for name in sorted({n for n, _ in fields}):
        for value in sorted({v for n, v in fields if n == name}):
            data += name + value
    return base64.b64encode(hmac.new(token.encode(), data.encode("utf-8"), hashlib.sha1).digest()).decode()


def inbound_form(sid: str = "SM" + "a" * 32, **extra: str) -> list[tuple[str, str]]:
    fields = {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Ann Customer",
        "SmsSid": sid,
        "WaId": CUSTOMER[1:],
        "SmsStatus": "received",
        "Body": "Hello there",
        "To": f"whatsapp:{NUMBER}",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": f"whatsapp:{CUSTOMER}",
        "ApiVersion": "2010-04-01",
        **extra,
    }
    return list(fields.items())


def request(
    fields: list[tuple[str, str]], url: str = URL, token: str = TOKEN, signature: str | None = None
) -> InboundRequest:
    body = urlencode(fields).encode()
    header = signature if signature is not None else independent_signature(token, url, fields)
    headers = {"content-type": "application/x-www-form-urlencoded", TWILIO_SIGNATURE_HEADER.lower(): header}
    return InboundRequest(body=body, headers=headers, url=url, channel_id=CHANNEL.id)


async def rejected(inbound: InboundRequest, channel: Channel = CHANNEL) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        await provider().receive(inbound, Channels(channel))
    return caught.value


# --- the signature scheme ------------------------------------------------------------------------------------


def test_signature_of_twilios_documented_example() -> None:
    assert twilio_signature("12345", DOC_URL, DOC_PARAMS.items()) == DOC_SIGNATURE
    assert independent_signature("12345", DOC_URL, list(DOC_PARAMS.items())) == DOC_SIGNATURE
    assert verify_twilio_signature("12345", DOC_URL, DOC_SIGNATURE, DOC_PARAMS.items())
    assert not verify_twilio_signature("12346", DOC_URL, DOC_SIGNATURE, DOC_PARAMS.items())
    assert not verify_twilio_signature("12345", DOC_URL, None, DOC_PARAMS.items())
    assert not verify_twilio_signature("", DOC_URL, twilio_signature("", DOC_URL, DOC_PARAMS.items()), [])


def test_signature_sorts_names_and_distinct_values_of_repeated_fields() -> None:
    fields = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature("12345", DOC_URL, fields) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="  # twilio-python's vector


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        (DOC_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # Twilio signed https://mycompany.com:443/...
        (DOC_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # http://mycompany.com:80/...
        (DOC_URL.replace(".com", ".com:443"), DOC_SIGNATURE),  # we were told :443, Twilio signed without
    ],
)
def test_signature_is_tried_with_and_without_the_default_port(url: str, signature: str) -> None:
    assert verify_twilio_signature("12345", url, signature, DOC_PARAMS.items())


def test_another_port_is_not_a_variant() -> None:
    assert not verify_twilio_signature("12345", DOC_URL.replace(".com", ".com:8443"), DOC_SIGNATURE, DOC_PARAMS.items())


def test_json_body_signature_checks_the_body_hash_then_the_url_alone() -> None:
    assert verify_twilio_signature("12345", DOC_BODY_URL, DOC_BODY_SIGNATURE, body=DOC_BODY)
    assert not verify_twilio_signature("12345", DOC_BODY_URL, DOC_BODY_SIGNATURE, body=DOC_BODY + b" ")
    assert not verify_twilio_signature("12345", DOC_URL, twilio_signature("12345", DOC_URL), body=DOC_BODY)


async def test_documented_examples_pass_the_signature_check_of_receive() -> None:
    """Twilio's examples are voice calls: authentic (no 401), but not a WhatsApp message (400)."""
    channel = Channel("doc", "Doc", "twilio", "+18005551212", "q", {"account_sid": ACCOUNT, "auth_token": "12345"})
    form = request(list(DOC_PARAMS.items()), url=DOC_URL, token="12345", signature=DOC_SIGNATURE)
    form = InboundRequest(form.body, form.headers, form.url, channel_id="doc")
    assert (await rejected(form, channel)).status == 400
    as_json = InboundRequest(
        DOC_BODY,
        {"Content-Type": "application/json", TWILIO_SIGNATURE_HEADER: DOC_BODY_SIGNATURE},
        DOC_BODY_URL,
        query={"foo": "1", "bar": "2", "bodySHA256": DOC_BODY_URL.rsplit("=", 1)[1]},
        channel_id="doc",
    )
    assert (await rejected(as_json, channel)).status == 400
    wrong = InboundRequest(
        as_json.body, {**as_json.headers, TWILIO_SIGNATURE_HEADER: DOC_SIGNATURE}, as_json.url, channel_id="doc"
    )
    assert (await rejected(wrong, channel)).status == 401


# --- receiving ---------------------------------------------------------------------------------------------------


async def test_text_message_is_converted_and_answered_with_empty_twiml() -> None:
    inbound = await provider().receive(request(inbound_form()), Channels(CHANNEL))
    [message] = inbound.messages
    assert (message.provider_message_id, message.sender, message.recipient) == ("SM" + "a" * 32, CUSTOMER, NUMBER)
    assert (message.type, message.text, message.sender_name) == ("text", "Hello there", "Ann Customer")
    assert message.channel_id == CHANNEL.id and message.provider == "twilio"
    assert abs(message.sent_at - datetime.now(UTC)) < timedelta(seconds=5)
    assert inbound.statuses == []
    assert inbound.reply is not None
    assert (inbound.reply.body, inbound.reply.content_type, inbound.reply.status) == (EMPTY_TWIML, "text/xml", 200)


async def test_media_with_caption_becomes_attachments_typed_by_content() -> None:
    media = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/SM1/Media/ME1"
    form = inbound_form(
        Body="look at this",
        NumMedia="2",
        MediaUrl0=media,
        MediaContentType0="image/jpeg",
        MediaUrl1=media.replace("ME1", "ME2"),
        MediaContentType1="application/pdf",
    )
    [message] = (await provider().receive(request(form), Channels(CHANNEL))).messages
    assert (message.type, message.text) == ("image", "look at this")
    assert [(a.url, a.content_type, a.file_name) for a in message.attachments] == [
        (media, "image/jpeg", "ME1.jpg"),
        (media.replace("ME1", "ME2"), "application/pdf", "ME2.pdf"),
    ]


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [("video/mp4", "video"), ("audio/ogg", "audio"), ("text/vcard", "file"), ("image/webp", "image")],
)
def test_message_type_follows_the_first_media_type(content_type: str, kind: str) -> None:
    form = inbound_form(Body="", NumMedia="1", MediaUrl0="https://api.twilio.com/m/ME9", MediaContentType0=content_type)
    [message] = convert(CHANNEL, form, datetime.now(UTC), "twilio").messages
    assert message.type == kind and message.text is None


def test_location_message() -> None:
    form = inbound_form(Body="", Latitude="52.52", Longitude="13.405", Label="Office", Address="Berlin")
    [message] = convert(CHANNEL, form, datetime.now(UTC), "twilio").messages
    assert message.type == "location"
    assert message.location is not None and (message.location.latitude, message.location.longitude) == (52.52, 13.405)
    assert message.text == "Office, Berlin"


@pytest.mark.parametrize(
    ("twilio_status", "ours"),
    [("sent", "sent"), ("delivered", "delivered"), ("read", "read"), ("failed", "failed"), ("undelivered", "failed")],
)
def test_status_callbacks_become_receipts(twilio_status: str, ours: str) -> None:
    form = [
        ("AccountSid", ACCOUNT),
        ("From", f"whatsapp:{NUMBER}"),
        ("To", f"whatsapp:{CUSTOMER}"),
        ("MessageSid", "SM" + "b" * 32),
        ("MessageStatus", twilio_status),
        ("ErrorCode", "63016"),
    ]
    inbound = convert(CHANNEL, form, datetime.now(UTC), "twilio")
    assert inbound.messages == []
    [receipt] = inbound.statuses
    assert (receipt.channel_id, receipt.provider_message_id, receipt.status) == (CHANNEL.id, "SM" + "b" * 32, ours)
    if ours == "failed":
        assert receipt.reason is not None and "24-hour reply window" in receipt.reason and "63016" in receipt.reason
    else:
        assert receipt.reason is None
    assert inbound.reply is not None and inbound.reply.body == EMPTY_TWIML


def test_intermediate_statuses_are_acknowledged_and_dropped() -> None:
    form = [("AccountSid", ACCOUNT), ("MessageSid", "SM1"), ("MessageStatus", "queued")]
    inbound = convert(CHANNEL, form, datetime.now(UTC), "twilio")
    assert (inbound.messages, inbound.statuses) == ([], [])


async def test_json_form_with_body_hash() -> None:
    body = json.dumps(dict(inbound_form())).encode()
    url = f"{URL}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"Content-Type": "application/json", TWILIO_SIGNATURE_HEADER: independent_signature(TOKEN, url, [])}
    signed = InboundRequest(body, headers, url, query={"bodySHA256": url.rsplit("=", 1)[1]}, channel_id=CHANNEL.id)
    [message] = (await provider().receive(signed, Channels(CHANNEL))).messages
    assert message.text == "Hello there"
    altered = InboundRequest(body.replace(b"Hello", b"Howdy"), headers, url, query=signed.query, channel_id=CHANNEL.id)
    assert (await rejected(altered)).status == 401


async def test_signature_over_the_url_with_default_port_is_accepted() -> None:
    public = "https://omni.example.com:443/webhooks/twilio/ch1"
    fields = inbound_form()
    signed = request(fields, url=URL, signature=independent_signature(TOKEN, public, fields))
    assert len((await provider().receive(signed, Channels(CHANNEL))).messages) == 1


@pytest.mark.parametrize(
    "spoil",
    ["wrong", "missing", "altered", "other_token", "other_url"],
)
async def test_unauthentic_webhooks_are_refused_with_401(spoil: str) -> None:
    fields = inbound_form()
    signature = independent_signature(TOKEN, URL, fields)
    inbound = request(fields, signature=signature)
    if spoil == "wrong":
        inbound = request(fields, signature=base64.b64encode(b"not the signature").decode())
    elif spoil == "missing":
        inbound = InboundRequest(
            inbound.body, {"content-type": "application/x-www-form-urlencoded"}, URL, channel_id="ch1"
        )
    elif spoil == "altered":
        inbound = InboundRequest(inbound.body.replace(b"Hello", b"Howdy"), inbound.headers, URL, channel_id="ch1")
    elif spoil == "other_token":
        inbound = request(fields, token="another-token")
    else:
        inbound = request(fields, signature=independent_signature(TOKEN, URL + "x", fields))
    refused = await rejected(inbound)
    assert (refused.status, refused.error) == (401, "bad_signature")
    assert TOKEN not in refused.detail


async def test_unknown_channel_is_404() -> None:
    inbound = request(inbound_form())
    elsewhere = InboundRequest(inbound.body, inbound.headers, inbound.url, channel_id="nope")
    assert (await rejected(elsewhere)).status == 404
    assert (await rejected(InboundRequest(inbound.body, inbound.headers, inbound.url))).status == 404


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"AccountSid": "AC" + "9" * 32}, "account_mismatch"),
        ({"To": "whatsapp:+10000000000"}, "number_mismatch"),
        ({"MessageSid": "", "SmsMessageSid": ""}, "invalid_payload"),
        ({"From": "whatsapp:"}, "invalid_payload"),
        ({"NumMedia": "two"}, "invalid_payload"),
        ({"NumMedia": "1"}, "invalid_payload"),
        ({"NumMedia": "1", "MediaUrl0": "file:///etc/passwd"}, "invalid_payload"),
        ({"Body": ""}, "invalid_payload"),
        ({"Latitude": "north", "Longitude": "1"}, "invalid_payload"),
        ({"Latitude": "91", "Longitude": "1"}, "invalid_payload"),
    ],
)
async def test_malformed_but_signed_webhooks_are_400(change: dict[str, str], error: str) -> None:
    fields = [(name, change.get(name, value)) for name, value in inbound_form()]
    fields += [(name, value) for name, value in change.items() if name not in dict(fields)]
    refused = await rejected(request(fields))
    assert (refused.status, refused.error) == (400, error)


async def test_body_that_is_not_utf8_is_400() -> None:
    raw = b"Body=\xff\xfe&MessageSid=SM1"
    inbound = InboundRequest(raw, {TWILIO_SIGNATURE_HEADER: "x"}, URL, channel_id="ch1")
    assert (await rejected(inbound)).status == 400


# --- property: random form data and JSON never crash the converter ---------------------------------------------

KNOWN_NAMES = [
    "AccountSid",
    "MessageSid",
    "SmsMessageSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "MediaUrl1",
    "ProfileName",
    "Latitude",
    "Longitude",
    "MessageStatus",
    "ErrorCode",
]
names = st.sampled_from(KNOWN_NAMES) | st.text(max_size=12)
values = (
    st.sampled_from(
        [
            ACCOUNT,
            f"whatsapp:{NUMBER}",
            f"whatsapp:{CUSTOMER}",
            "0",
            "1",
            "2",
            "11",
            "-1",
            "1e3",
            "nan",
            "inf",
            "sent",
            "read",
            "failed",
            "received",
            "https://api.twilio.com/m/ME1",
            "image/png",
            "",
        ]
    )
    | st.text(max_size=40)
    | st.floats().map(str)
)
forms = st.lists(st.tuples(names, values), max_size=16)


@settings(max_examples=400, deadline=None)
@given(forms)
def test_random_form_data_is_converted_or_refused_with_400(fields: list[tuple[str, str]]) -> None:
    try:
        inbound = convert(CHANNEL, fields, datetime.now(UTC), "twilio")
    except WebhookRejected as refused:
        assert refused.status == 400
    else:
        assert inbound.reply is not None
        for message in inbound.messages:
            assert message.provider_message_id and message.sender and message.recipient == NUMBER
            assert message.text or message.attachments or message.location
        assert all(s.provider_message_id for s in inbound.statuses)


@settings(max_examples=200, deadline=None)
@given(forms)
async def test_random_signed_form_bodies_through_receive(fields: list[tuple[str, str]]) -> None:
    inbound = request(fields)
    try:
        await provider().receive(inbound, Channels(CHANNEL))
    except WebhookRejected as refused:
        assert refused.status == 400  # signed with the channel's token: never 401, never a crash


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KNOWN_NAMES), children),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_is_converted_or_refused_with_400(payload: object) -> None:
    try:
        inbound = convert(CHANNEL, json_fields(payload), datetime.now(UTC), "twilio")
    except WebhookRejected as refused:
        assert refused.status == 400
    else:
        assert all(m.provider_message_id for m in inbound.messages)


# --- sending, media, registration: against the simulator's Twilio API -------------------------------------------


def reply(text: str | None = "Hi Ann", *urls: str) -> MessageOutgoing:
    return MessageOutgoing(
        message_id="m1",
        chat_id="c1",
        channel_id=CHANNEL.id,
        provider="twilio",
        recipient=CUSTOMER,
        text=text,
        attachments=tuple(Attachment(url=u) for u in urls),
    )


async def open_account(simulator: Simulator, window: bool = True) -> None:
    async with simulator.client() as control:
        assert (await control.put(f"/_sim/twilio/accounts/{ACCOUNT}", json={"auth_token": TOKEN})).status_code == 200
        body = {"account_sid": ACCOUNT, "customer": CUSTOMER, "open": window}
        assert (await control.post("/_sim/twilio/windows", json=body)).status_code == 200


async def test_send_posts_the_exact_form_with_basic_auth(simulator: Simulator) -> None:
    await open_account(simulator)
    twilio = provider(f"{simulator.url}/twilio")
    async with httpx.AsyncClient() as http:
        result = await twilio.send(
            http, CHANNEL, reply("Hi Ann", "https://files.example/a.png", "https://files.example/b.pdf")
        )
    [recorded] = await simulator.requests("/twilio/")
    assert recorded["path"] == f"/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert recorded["status"] == 201 and result.provider_message_id == recorded["answer_message_id"]
    assert result.provider_message_id is not None and result.provider_message_id.startswith("SM")
    assert parse_qsl(recorded["raw"]) == [
        ("To", f"whatsapp:{CUSTOMER}"),
        ("From", f"whatsapp:{NUMBER}"),
        ("Body", "Hi Ann"),
        ("MediaUrl", "https://files.example/a.png"),
        ("MediaUrl", "https://files.example/b.pdf"),
        ("StatusCallback", f"{PUBLIC}/webhooks/twilio/ch1"),
    ]
    assert recorded["headers"]["authorization"] == f"Basic {ACCOUNT}:***"
    assert TOKEN not in json.dumps(recorded)


async def test_send_outside_the_window_fails_with_a_clear_reason(simulator: Simulator) -> None:
    await open_account(simulator, window=False)
    async with httpx.AsyncClient() as http:
        with pytest.raises(PermanentError, match=r"24-hour reply window.*63016"):
            await provider(f"{simulator.url}/twilio").send(http, CHANNEL, reply())


@pytest.mark.parametrize(
    ("status", "body", "retry_after"),
    [
        (429, '{"code": 20429, "message": "Too Many Requests", "status": 429}', 2.0),
        (400, '{"code": 63018, "message": "Rate limit exceeded", "status": 400}', None),
        (503, "upstream unavailable", None),
    ],
)
async def test_rate_limits_and_server_errors_are_retried(
    simulator: Simulator, status: int, body: str, retry_after: float | None
) -> None:
    await open_account(simulator)
    await simulator.fault(
        path_prefix="/twilio/",
        status=status,
        count=1,
        body=body,
        content_type="application/json",
        retry_after=retry_after,
    )
    async with httpx.AsyncClient() as http:
        with pytest.raises(RetryLater) as caught:
            await provider(f"{simulator.url}/twilio").send(http, CHANNEL, reply())
    assert caught.value.retry_after == retry_after


async def test_wrong_credentials_fail_without_showing_the_token(simulator: Simulator) -> None:
    await open_account(simulator)
    channel = Channel("ch1", "WhatsApp", "twilio", NUMBER, "q1", {"account_sid": ACCOUNT, "auth_token": "stale-token"})
    async with httpx.AsyncClient() as http:
        with pytest.raises(PermanentError) as caught:
            await provider(f"{simulator.url}/twilio").send(http, channel, reply())
    assert "20003" in str(caught.value) and "stale-token" not in str(caught.value)
    assert simulator.url not in str(caught.value)


def test_unsendable_messages_are_refused_before_calling_twilio() -> None:
    twilio = provider()
    with pytest.raises(PermanentError, match="neither text nor attachments"):
        twilio.outgoing_form(CHANNEL, reply(None))
    with pytest.raises(PermanentError, match="at most 10"):
        twilio.outgoing_form(CHANNEL, reply("x", *[f"https://f/{n}" for n in range(11)]))
    no_url = reply("x").model_copy(update={"attachments": (Attachment(provider_file_id="f1"),)})
    with pytest.raises(PermanentError, match="by URL only"):
        twilio.outgoing_form(CHANNEL, no_url)


async def test_media_urls_of_twilio_get_basic_auth_others_do_not() -> None:
    twilio = provider("https://api.twilio.com")
    media = Attachment(url=f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/SM1/Media/ME1")
    async with httpx.AsyncClient() as http:
        located = await twilio.locate_attachment(http, CHANNEL, media)
        elsewhere = await twilio.locate_attachment(http, CHANNEL, Attachment(url="https://evil.example/x"))
    expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert located.url == media.url and located.headers == {"Authorization": expected}
    assert TOKEN not in repr(located) and expected not in repr(located)
    assert elsewhere.headers == {}


async def test_register_checks_the_credentials(simulator: Simulator) -> None:
    await open_account(simulator)
    twilio = provider(f"{simulator.url}/twilio")
    stale = Channel("ch1", "WhatsApp", "twilio", NUMBER, "q1", {"account_sid": ACCOUNT, "auth_token": "stale-token"})
    async with httpx.AsyncClient() as http:
        good = await twilio.register(http, CHANNEL)
        bad = await twilio.register(http, stale)
        incomplete = await twilio.register(http, Channel("ch2", "W", "twilio", NUMBER, "q1", {}))
    assert good.ok and f"{PUBLIC}/webhooks/twilio/ch1" in good.detail
    assert not bad.ok and "refused" in bad.detail and "stale-token" not in bad.detail
    assert not incomplete.ok and "account_sid" in incomplete.detail
    [first, second] = await simulator.requests("/twilio/")
    assert (first["status"], second["status"]) == (200, 401)
    assert first["path"] == f"/twilio/2010-04-01/Accounts/{ACCOUNT}.json"


def test_delivery_policy_keeps_the_24_hour_window_and_80_per_second() -> None:
    policy = delivery_policy(provider())
    assert policy.reply_window == timedelta(hours=24)
    assert policy.per_channel_rate == 80.0
