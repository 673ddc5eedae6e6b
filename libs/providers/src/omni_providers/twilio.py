"""WhatsApp through Twilio: signed form webhooks (messages and status callbacks), the Messages API, media by basic auth.

Wire facts: docs/providers.md, "WhatsApp through Twilio". A channel's settings are `account_sid` and
`auth_token`; its `source` is our WhatsApp number as `+E164`.
"""

import base64
import json
import logging
import math
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import ValidationError

from omni_contracts import (
    Attachment,
    Location,
    MessageOutgoing,
    MessageStatus,
    MessageStatusChanged,
    MessageType,
    Template,
    UnifiedMessage,
)
from omni_providers.base import (
    Channel,
    ChannelLookup,
    DeliveryPolicy,
    Inbound,
    InboundRequest,
    Registration,
    SendResult,
    WebhookRejected,
    WebhookReply,
)
from omni_providers.http import call, raise_for_delivery, retry_after_seconds
from omni_providers.payloads import parse_form, parse_json
from omni_providers.signatures import TWILIO_SIGNATURE_HEADER, verify_twilio_signature
from omni_runtime.errors import PermanentError, RetryLater
from omni_runtime.settings import Settings
from omni_runtime.web import describe

log = logging.getLogger(__name__)

WHATSAPP = "whatsapp:"
API_VERSION = "2010-04-01"
# Twilio waits for TwiML; an empty <Response/> means "nothing to say back".
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_MEDIA = 10  # Twilio takes at most 10 MediaUrl per message, and sends at most 10 per webhook
MAX_MEDIA_BYTES = 5 * 1024 * 1024  # all of one message's media together
# Twilio's status words for outgoing messages; the ones not listed (queued, accepted, sending, ...) change nothing here.
RECEIPTS: dict[str, MessageStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}
MEDIA_TYPES: dict[str, MessageType] = {"image": "image", "video": "video", "audio": "audio"}
# MessageStatus values an incoming message's own webhook may carry: it is a message, not a receipt.
INBOUND_STATUSES = frozenset({"", "received", "receiving"})
OUTSIDE_WINDOW = 63016
RATE_LIMITED = 63018
CREDENTIALS_REFUSED = 20003


@dataclass(frozen=True)
class MediaLocation:
    """A Twilio media URL and the basic-auth header it needs (kept out of reprs: it holds the auth token)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


class TwilioProvider:
    """The `twilio` provider: WhatsApp messages through Twilio's Programmable Messaging."""

    # Outside the 24-hour window only templates (ContentSid) go (Twilio error 63016 otherwise).
    delivery_policy = DeliveryPolicy(reply_window=timedelta(hours=24), per_channel_rate=80.0, templates=True)

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self._api = settings.twilio_api_url.rstrip("/")
        self._public_base_url = settings.public_base_url.rstrip("/")

    # --- receiving (the reference's IIncomeMessageWorker) ---------------------------------------------------

    async def receive(self, request: InboundRequest, channels: ChannelLookup) -> Inbound:
        channel = await channels.by_id(self.name, request.channel_id) if request.channel_id else None
        if channel is None:
            raise WebhookRejected(404, "unknown_channel", f"no active {self.name} channel at this address")
        fields = self.verified_fields(channel, request)
        return convert(channel, fields, datetime.now(UTC), self.name)

    def verified_fields(self, channel: Channel, request: InboundRequest) -> list[tuple[str, str]]:
        """The webhook's fields once its X-Twilio-Signature holds (401 otherwise); nothing is acted on before."""
        token = str(channel.settings.get("auth_token") or "")
        header = request.header(TWILIO_SIGNATURE_HEADER)
        if _is_json(request):
            if not verify_twilio_signature(token, request.url, header, body=request.body):
                raise WebhookRejected(401, "bad_signature", "X-Twilio-Signature or bodySHA256 missing or wrong")
            return json_fields(parse_json(request.body))
        form = parse_form(request.body)
        if not verify_twilio_signature(token, request.url, header, form):
            raise WebhookRejected(401, "bad_signature", "X-Twilio-Signature missing or wrong")
        return form

    # --- sending (IOutcomeMessageWorker) ---------------------------------------------------------------------

    async def send(self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing) -> SendResult:
        account_sid, auth_token = _credentials(channel)
        response = await call(
            http,
            "POST",
            f"{self._api}/{API_VERSION}/Accounts/{quote(account_sid, safe='')}/Messages.json",
            "Twilio Messages API",
            data=self.outgoing_form(channel, message),
            auth=(account_sid, auth_token),
        )
        _raise_for_twilio(response, "Twilio Messages API")
        sid = _json_object(response).get("sid")
        if not isinstance(sid, str) or not sid:
            log.warning("Twilio accepted a message without a sid", extra={"message_id": message.message_id})
            return SendResult(provider_message_id=None)
        return SendResult(provider_message_id=sid)

    def outgoing_form(self, channel: Channel, message: MessageOutgoing) -> dict[str, str | list[str]]:
        """The Messages.json form: To, From, then Body and MediaUrl (repeated; ours are signed links) or a template
        (ContentSid, ContentVariables), and StatusCallback back to our webhook."""
        form: dict[str, str | list[str]] = {
            "To": WHATSAPP + message.recipient,
            "From": WHATSAPP + channel.source,
        }
        if message.template is not None:
            form.update(template_fields(message.template))
        else:
            form.update(_content_fields(message))
        form["StatusCallback"] = self.status_callback_url(channel)
        return form

    def status_callback_url(self, channel: Channel) -> str:
        return f"{self._public_base_url}/webhooks/{self.name}/{quote(channel.id, safe='')}"

    # --- optional roles ----------------------------------------------------------------------------------------

    async def locate_attachment(
        self, http: httpx.AsyncClient, channel: Channel, attachment: Attachment
    ) -> MediaLocation:
        """Media URLs of our Twilio API need the account's basic auth; any other URL is fetched as it is."""
        if not attachment.url:
            raise PermanentError("the Twilio attachment has no media URL")
        if not _same_origin(attachment.url, self._api):
            return MediaLocation(attachment.url)
        account_sid, auth_token = _credentials(channel)
        return MediaLocation(attachment.url, {"Authorization": basic_auth(account_sid, auth_token)})

    async def register(self, http: httpx.AsyncClient, channel: Channel) -> Registration:
        """Check the credentials against the Accounts API; the webhook itself is set on the WhatsApp sender."""
        try:
            account_sid, auth_token = _credentials(channel)
        except PermanentError as exc:
            return Registration(ok=False, detail=str(exc))
        response = await call(
            http,
            "GET",
            f"{self._api}/{API_VERSION}/Accounts/{quote(account_sid, safe='')}.json",
            "Twilio Accounts API",
            auth=(account_sid, auth_token),
        )
        if response.status_code in (401, 403, 404):
            return Registration(ok=False, detail=f"Twilio refused the account SID and auth token ({_error(response)})")
        _raise_for_twilio(response, "Twilio Accounts API")
        account = _json_object(response)
        status = str(account.get("status") or "unknown")
        name = str(account.get("friendly_name") or account_sid)
        if status != "active":
            return Registration(ok=False, detail=f"Twilio account {name} is {status}, not active")
        return Registration(
            ok=True,
            detail=(
                f"Twilio account {name} accepted the credentials; set the WhatsApp sender's "
                f"incoming-message webhook to {self.status_callback_url(channel)}"
            ),
        )


def template_fields(template: Template) -> dict[str, str]:
    """A template send: the template's Content SID, its variables as JSON `{"1": ..., "2": ...}` in order."""
    fields = {"ContentSid": template.name}
    if template.parameters:
        variables = {str(number): value for number, value in enumerate(template.parameters, start=1)}
        fields["ContentVariables"] = json.dumps(variables, ensure_ascii=False)
    return fields


def _content_fields(message: MessageOutgoing) -> dict[str, str | list[str]]:
    media = _checked_media(message)
    if not message.text and not media:
        raise PermanentError("nothing to send: the message has neither text nor attachments")
    fields: dict[str, str | list[str]] = {}
    if message.text:
        fields["Body"] = message.text
    if media:
        fields["MediaUrl"] = media
    return fields


def _checked_media(message: MessageOutgoing) -> list[str]:
    """The attachments' URLs (Twilio fetches media by URL), refusing what Twilio could not take."""
    media = [a.url or "" for a in message.attachments]
    if not all(media):
        raise PermanentError("Twilio sends attachments by URL only, and an attachment has none")
    if len(media) > MAX_MEDIA:
        raise PermanentError(f"Twilio takes at most {MAX_MEDIA} attachments per message, not {len(media)}")
    total = sum(a.size or 0 for a in message.attachments)
    if total > MAX_MEDIA_BYTES:
        raise PermanentError(f"Twilio takes at most 5 MB of media per message ({MAX_MEDIA_BYTES} bytes), not {total}")
    return media


# --- conversion: a verified webhook's fields -> messages or receipts -------------------------------------------


def convert(channel: Channel, fields: Sequence[tuple[str, str]], received_at: datetime, provider: str) -> Inbound:
    """One Twilio webhook as messages and receipts; anything malformed raises WebhookRejected(400)."""
    form = _first_values(fields)
    account_sid = form.get("AccountSid", "")
    if not account_sid:
        raise _invalid("AccountSid is required")
    if account_sid != str(channel.settings.get("account_sid") or ""):
        raise WebhookRejected(400, "account_mismatch", "AccountSid is not this channel's Twilio account")
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
    if not sid:
        raise _invalid("MessageSid is required")
    status = form.get("MessageStatus", "").strip().lower()
    if status not in INBOUND_STATUSES:
        return Inbound(statuses=_receipt(channel, sid, status, form), reply=twiml())
    return Inbound(messages=[_message(channel, sid, form, received_at, provider)], reply=twiml())


def twiml() -> WebhookReply:
    return WebhookReply(EMPTY_TWIML, content_type="text/xml")


def json_fields(payload: Any) -> list[tuple[str, str]]:
    """A JSON webhook body as the form fields it stands for: an object of scalar values."""
    if not isinstance(payload, dict):
        raise _invalid("a JSON webhook body must be an object")
    fields: list[tuple[str, str]] = []
    for name, value in payload.items():
        if isinstance(value, bool):
            fields.append((name, "true" if value else "false"))
        elif isinstance(value, str | int | float):
            fields.append((name, str(value)))
        elif value is not None:
            raise _invalid(f"{name}: only text, numbers and booleans are expected")
    return fields


def _receipt(channel: Channel, sid: str, status: str, form: Mapping[str, str]) -> list[MessageStatusChanged]:
    mapped = RECEIPTS.get(status)
    if mapped is None:
        return []  # queued, accepted, sending, ...: nothing an operator needs to see
    reason = _failure_reason(status, form.get("ErrorCode", "")) if mapped == "failed" else None
    try:
        return [MessageStatusChanged(channel_id=channel.id, provider_message_id=sid, status=mapped, reason=reason)]
    except ValidationError as exc:
        raise _invalid(describe(exc)) from None


def _failure_reason(status: str, code: str) -> str:
    if code == str(OUTSIDE_WINDOW):
        return f"outside WhatsApp's 24-hour reply window: only a template may be sent (Twilio error {code})"
    return f"Twilio reports the message {status}" + (f" (Twilio error {code[:16]})" if code else "")


def _message(
    channel: Channel, sid: str, form: Mapping[str, str], received_at: datetime, provider: str
) -> UnifiedMessage:
    sender = _number(form.get("From", ""))
    if not sender:
        raise _invalid("From is required")
    if _number(form.get("To", "")) != channel.source:
        raise WebhookRejected(400, "number_mismatch", "To is not this channel's WhatsApp number")
    attachments = _attachments(form)
    location = _location(form)
    text = _text(form, location)
    if not text and not attachments and location is None:
        raise _invalid("a message needs a Body, media or a location")
    try:
        return UnifiedMessage(
            provider=provider,
            channel_id=channel.id,
            provider_message_id=sid,
            sender=sender,
            sender_name=(form.get("ProfileName") or "").strip()[:256] or None,
            recipient=channel.source,
            sent_at=received_at,  # Twilio sends no timestamp: the arrival time stands in
            type=_message_type(attachments, location),
            text=text,
            attachments=attachments,
            location=location,
        )
    except ValidationError as exc:
        raise _invalid(describe(exc)) from None


def _text(form: Mapping[str, str], location: Location | None) -> str | None:
    """The Body; a shared location without one is described by its label and address."""
    text = form.get("Body") or None
    if location is not None and text is None:
        text = ", ".join(part for part in (form.get("Label"), form.get("Address")) if part) or None
    return text


def _attachments(form: Mapping[str, str]) -> tuple[Attachment, ...]:
    raw = form.get("NumMedia", "0").strip() or "0"
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_MEDIA:
        raise _invalid(f"NumMedia must be a whole number from 0 to {MAX_MEDIA}")
    found = []
    for index in range(int(raw)):
        url = form.get(f"MediaUrl{index}", "")
        if not url.startswith(("https://", "http://")):
            raise _invalid(f"MediaUrl{index} must be an http(s) URL")
        content_type = form.get(f"MediaContentType{index}") or None
        found.append(Attachment(url=url, content_type=content_type, file_name=_file_name(url, content_type)))
    return tuple(found)


def _file_name(url: str, content_type: str | None) -> str | None:
    """The media SID (the URL's last segment) with the extension of its type: ME123.jpg."""
    media_sid = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not media_sid:
        return None
    extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) if content_type else None
    return media_sid + (extension or "")


def _location(form: Mapping[str, str]) -> Location | None:
    latitude, longitude = form.get("Latitude"), form.get("Longitude")
    if not latitude and not longitude:
        return None
    try:
        lat, lon = float(latitude or ""), float(longitude or "")
    except ValueError:
        raise _invalid("Latitude and Longitude must both be numbers") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise _invalid("Latitude and Longitude are out of range")
    return Location(latitude=lat, longitude=lon)


def _message_type(attachments: tuple[Attachment, ...], location: Location | None) -> MessageType:
    if attachments:
        kind = (attachments[0].content_type or "").split("/", 1)[0].lower()
        return MEDIA_TYPES.get(kind, "file")
    return "location" if location is not None else "text"


def _number(value: str) -> str:
    value = value.strip()
    return value[len(WHATSAPP) :] if value.lower().startswith(WHATSAPP) else value


def _first_values(fields: Sequence[tuple[str, str]]) -> dict[str, str]:
    form: dict[str, str] = {}
    for name, value in fields:
        form.setdefault(name, value)
    return form


def _invalid(detail: str) -> WebhookRejected:
    return WebhookRejected(400, "invalid_payload", detail)


def _is_json(request: InboundRequest) -> bool:
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    return content_type == "application/json" or "bodySHA256" in request.query


# --- the REST API ------------------------------------------------------------------------------------------


def basic_auth(account_sid: str, auth_token: str) -> str:
    return "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()


def _credentials(channel: Channel) -> tuple[str, str]:
    account_sid = str(channel.settings.get("account_sid") or "")
    auth_token = str(channel.settings.get("auth_token") or "")
    if not account_sid or not auth_token:
        raise PermanentError(f"channel {channel.id} needs settings account_sid and auth_token")
    return account_sid, auth_token


def _raise_for_twilio(response: httpx.Response, what: str) -> None:
    """Twilio's error codes first (63016 window closed, 63018 rate limit), then the status as usual."""
    if response.is_success:
        return
    code = _json_object(response).get("code")
    if code == OUTSIDE_WINDOW:
        raise PermanentError(
            "outside WhatsApp's 24-hour reply window: the customer has not written in the last 24 hours, "
            f"so only a template may be sent (Twilio error {OUTSIDE_WINDOW})"
        )
    if code == RATE_LIMITED:
        raise RetryLater(
            f"{what}: WhatsApp rate limit reached (Twilio error {RATE_LIMITED})",
            retry_after_seconds(response),
            throttled=True,
        )
    if code == CREDENTIALS_REFUSED:
        raise PermanentError(f"{what} refused the channel's account SID and auth token (Twilio error {code})")
    # The shared classification (429 and 5xx retried, Retry-After kept), reading Twilio's words instead of the raw body.
    hint = {"Retry-After": response.headers["Retry-After"]} if "Retry-After" in response.headers else {}
    raise_for_delivery(httpx.Response(response.status_code, headers=hint, text=_error(response)), what)


def _error(response: httpx.Response) -> str:
    """Twilio's own words for an error (its code and message), never the request: URLs carry the account."""
    error = _json_object(response)
    if "code" in error or "message" in error:
        return f"{response.status_code}, Twilio error {error.get('code')}: {str(error.get('message'))[:200]}"
    return f"{response.status_code}: {response.text[:200]}"


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _same_origin(url: str, base: str) -> bool:
    try:
        one, other = urlsplit(url), urlsplit(base)
        return (one.scheme, one.hostname, one.port) == (other.scheme, other.hostname, other.port)
    except ValueError:
        return False
