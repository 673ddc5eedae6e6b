"""Twilio's side: the REST API under /twilio (Messages.json, Accounts, media behind basic auth), signed webhook pushes.

The API side answers as Twilio does: HTTP Basic auth with (AccountSid, AuthToken), JSON errors
`{"code", "message", "more_info", "status"}`, error 63016 when the customer has not written in
24 hours. Recorded requests keep the exact form and the basic-auth user; the token is replaced
by `***`. The control side under `/_sim/twilio/` registers accounts and media and pushes signed
webhooks (customer messages and status callbacks) to ingress. A template send (`ContentSid`, `ContentVariables`)
goes at any time; `MediaUrl`s are fetched when the send is taken, as Twilio does, and the bytes recorded with it.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from omni_providers.signatures import TWILIO_SIGNATURE_HEADER, twilio_signature
from omni_runtime.service import Slot
from omni_runtime.web import ApiError, parse_body, read_json
from omni_simulator.media import fetch_all
from omni_simulator.messenger import _apply, _record, _status
from omni_simulator.state import ReceivedFile, SimulatorState

PREFIX = "/twilio"
API = f"{PREFIX}/2010-04-01"
CONTROL = "/_sim/twilio"
WHATSAPP = "whatsapp:"
REPLY_WINDOW = timedelta(hours=24)
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


@dataclass
class Account:
    auth_token: str = field(repr=False)
    friendly_name: str
    status: str


@dataclass
class Media:
    content: bytes
    content_type: str
    not_found_left: int


@dataclass
class SentMessage:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str | None
    media_urls: list[str]
    status_callback: str | None
    status: str = "queued"
    content_sid: str | None = None
    content_variables: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "media_urls": self.media_urls,
            "status_callback": self.status_callback,
            "status": self.status,
            "content_sid": self.content_sid,
            "content_variables": self.content_variables,
        }


@dataclass
class TwilioState:
    """Twilio's memory: accounts with their tokens, media by path, sent messages, customers' last messages."""

    accounts: dict[str, Account] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    messages: dict[str, SentMessage] = field(default_factory=dict)
    # (account SID, customer number) -> when the customer last wrote: WhatsApp's 24-hour window.
    last_inbound: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def clear(self) -> None:
        self.accounts.clear()
        self.media.clear()
        self.messages.clear()
        self.last_inbound.clear()

    def window_open(self, account_sid: str, customer: str) -> bool:
        last = self.last_inbound.get((account_sid, customer))
        return last is not None and datetime.now(UTC) - last < REPLY_WINDOW


def twilio_state(state: SimulatorState) -> TwilioState:
    found = state.extras.get("twilio")
    if not isinstance(found, TwilioState):
        found = state.extras["twilio"] = TwilioState()
    return found


class AccountBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth_token: str = Field(min_length=1)
    friendly_name: str | None = None
    status: Literal["active", "suspended", "closed"] = "active"


class PushBody(BaseModel):
    """`POST /_sim/twilio/push`: a customer's webhook, signed with the account's token unless overridden.

    `fields` are the form fields in order (pairs, names may repeat). `public_url` is the base the
    signature uses when ingress sits behind another address. `altered` replaces or adds fields after
    signing; `as_json` sends the JSON form with `?bodySHA256=`.
    """

    model_config = ConfigDict(extra="forbid")

    ingress_url: str = Field(pattern=r"^https?://")
    channel_id: str = Field(min_length=1)
    account_sid: str = Field(min_length=1)
    fields: list[tuple[str, str]]
    auth_token: str | None = None
    public_url: str | None = Field(default=None, pattern=r"^https?://")
    signature: str | None = None
    omit_signature: bool = False
    altered: dict[str, str] = Field(default_factory=dict)
    as_json: bool = False


class StatusBody(BaseModel):
    """`POST /_sim/twilio/messages/{sid}/status`: Twilio's status callback for a message it was sent."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["queued", "sent", "delivered", "read", "failed", "undelivered"]
    error_code: int | None = None
    signature: str | None = None


class WindowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_sid: str = Field(min_length=1)
    customer: str = Field(min_length=1)
    open: bool


def routes(state: SimulatorState, http: Slot[httpx.AsyncClient]) -> list[BaseRoute]:
    """The Twilio REST API under PREFIX and its control endpoints under CONTROL."""
    twilio = twilio_state(state)

    async def send_message(request: Request) -> Response:
        account_sid: str = request.path_params["account_sid"]
        raw = await request.body()
        pairs = parse_qsl(raw.decode(errors="replace"), keep_blank_values=True)
        fault = state.take_fault(request.url.path)
        user, refusal = _authenticate(twilio, request, account_sid)
        sid = f"SM{uuid.uuid4().hex}"
        if refusal is None:
            refusal = _refuse_message(twilio, account_sid, pairs)
        files: list[ReceivedFile] = []
        if refusal is None and (fault is None or fault.status is None):
            files = await fetch_all(http.get(), [value for name, value in pairs if name == "MediaUrl"])
        status = _status(fault, refusal.status_code if refusal is not None else 201)
        answered = sid if fault is None and refusal is None else None
        _record(
            state,
            request,
            fault,
            status,
            provider="twilio",
            raw=raw,
            payload=_form(pairs),
            answer_id=answered,
            files=files,
        )
        _hide_token(state, user)
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if refusal is not None:
            return refusal
        message = _sent(sid, account_sid, pairs)
        twilio.messages[sid] = message
        return JSONResponse(_message_resource(message), status_code=201)

    async def get_account(request: Request) -> Response:
        account_sid: str = request.path_params["account_sid"]
        fault = state.take_fault(request.url.path)
        user, refusal = _authenticate(twilio, request, account_sid)
        _record(state, request, fault, _status(fault, refusal.status_code if refusal else 200), provider="twilio")
        _hide_token(state, user)
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if refusal is not None:
            return refusal
        account = twilio.accounts[account_sid]
        return JSONResponse(
            {
                "sid": account_sid,
                "friendly_name": account.friendly_name,
                "status": account.status,
                "type": "Full",
                "uri": f"/2010-04-01/Accounts/{account_sid}.json",
            }
        )

    async def get_media(request: Request) -> Response:
        account_sid: str = request.path_params["account_sid"]
        fault = state.take_fault(request.url.path)
        user, refusal = _authenticate(twilio, request, account_sid)
        media = twilio.media.get(request.url.path)
        if refusal is None and (media is None or media.not_found_left > 0):
            if media is not None:
                media.not_found_left -= 1  # just after a message Twilio may not have the file yet
            refusal = _twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")
            media = None
        _record(state, request, fault, _status(fault, refusal.status_code if refusal else 200), provider="twilio")
        _hide_token(state, user)
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if media is None:
            return refusal or _twilio_error(404, 20404, "not found")
        return Response(media.content, media_type=media.content_type)

    async def put_account(request: Request) -> Response:
        account_sid: str = request.path_params["account_sid"]
        body = parse_body(AccountBody, await read_json(request))
        twilio.accounts[account_sid] = Account(body.auth_token, body.friendly_name or account_sid, body.status)
        return JSONResponse({"sid": account_sid, "status": body.status})  # the token is never echoed

    async def put_media(request: Request) -> Response:
        account_sid = request.query_params.get("account_sid", "")
        not_found_first = request.query_params.get("not_found_first", "0")
        if not account_sid or not not_found_first.isdigit():
            raise ApiError(400, "invalid_query", "account_sid is required; not_found_first is a whole number")
        message_sid = request.query_params.get("message_sid") or f"MM{uuid.uuid4().hex}"
        media_sid = f"ME{uuid.uuid4().hex}"
        path = f"{API}/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}"
        content = await request.body()
        content_type = request.headers.get("content-type", "application/octet-stream")
        twilio.media[path] = Media(content, content_type, int(not_found_first))
        url = str(request.base_url).rstrip("/") + path
        return JSONResponse(
            {"url": url, "media_sid": media_sid, "message_sid": message_sid, "size": len(content)}, status_code=201
        )

    async def push(request: Request) -> Response:
        body = parse_body(PushBody, await read_json(request))
        token = body.auth_token or _token_of(twilio, body.account_sid)
        fields = dict(body.fields)
        if not fields.get("MessageStatus") and fields.get("From"):
            # The customer wrote: WhatsApp's 24-hour window opens whatever ingress answers.
            twilio.last_inbound[(body.account_sid, _number(fields["From"]))] = datetime.now(UTC)
        path = f"/webhooks/twilio/{body.channel_id}"
        webhook = Webhook(body.fields, body.signature, body.omit_signature, body.altered, body.as_json)
        signed_url = (body.public_url or body.ingress_url).rstrip("/") + path
        return await webhook.post(http.get(), body.ingress_url.rstrip("/") + path, signed_url, token)

    async def status_callback(request: Request) -> Response:
        message = twilio.messages.get(request.path_params["sid"])
        if message is None:
            raise ApiError(404, "not_found", "no message with this sid was sent")
        if not message.status_callback:
            raise ApiError(409, "no_status_callback", "the message was sent without a StatusCallback")
        body = parse_body(StatusBody, await read_json(request))
        message.status = body.status
        fields = [
            ("AccountSid", message.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("ChannelPrefix", "whatsapp"),
            ("From", message.from_),
            ("MessageSid", message.sid),
            ("MessageStatus", body.status),
            ("SmsSid", message.sid),
            ("SmsStatus", body.status),
            ("To", message.to),
        ]
        if body.error_code is not None:
            fields.append(("ErrorCode", str(body.error_code)))
        webhook = Webhook(fields, signature=body.signature)
        token = _token_of(twilio, message.account_sid)
        return await webhook.post(http.get(), message.status_callback, message.status_callback, token)

    async def set_window(request: Request) -> Response:
        body = parse_body(WindowBody, await read_json(request))
        key = (body.account_sid, _number(body.customer))
        if body.open:
            twilio.last_inbound[key] = datetime.now(UTC)
        else:
            twilio.last_inbound[key] = datetime.now(UTC) - REPLY_WINDOW - timedelta(minutes=1)
        return JSONResponse({"account_sid": body.account_sid, "customer": key[1], "open": body.open})

    async def list_messages(request: Request) -> Response:
        return JSONResponse({"items": [m.to_json() for m in twilio.messages.values()], "next_cursor": None})

    async def reset(request: Request) -> Response:
        twilio.clear()
        return Response(status_code=204)

    return [
        Route(f"{API}/Accounts/{{account_sid}}/Messages.json", send_message, methods=["POST"]),
        Route(f"{API}/Accounts/{{account_sid}}.json", get_account, methods=["GET"]),
        Route(
            f"{API}/Accounts/{{account_sid}}/Messages/{{message_sid}}/Media/{{media_sid}}", get_media, methods=["GET"]
        ),
        Route(f"{CONTROL}/accounts/{{account_sid}}", put_account, methods=["PUT"]),
        Route(f"{CONTROL}/media", put_media, methods=["POST"]),
        Route(f"{CONTROL}/push", push, methods=["POST"]),
        Route(f"{CONTROL}/messages", list_messages, methods=["GET"]),
        Route(f"{CONTROL}/messages/{{sid}}/status", status_callback, methods=["POST"]),
        Route(f"{CONTROL}/windows", set_window, methods=["POST"]),
        Route(CONTROL, reset, methods=["DELETE"]),
    ]


@dataclass(frozen=True)
class Webhook:
    """A webhook as Twilio sends it: form fields (or their JSON form), signed, optionally spoilt for a test."""

    fields: list[tuple[str, str]]
    signature: str | None = None
    omit_signature: bool = False
    altered: dict[str, str] = field(default_factory=dict)
    as_json: bool = False

    async def post(self, client: httpx.AsyncClient, target: str, signed_url: str, token: str) -> Response:
        """POST to `target`, signed over `signed_url`; answers ingress's status, content type and body."""
        raw, content_type, target, signature = self._signed(target, signed_url, token)
        headers = {"Content-Type": content_type, "I-Twilio-Idempotency-Token": uuid.uuid4().hex}
        if not self.omit_signature:
            headers[TWILIO_SIGNATURE_HEADER] = self.signature if self.signature is not None else signature
        try:
            answer = await client.post(target, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(502, "push_failed", f"{type(exc).__name__}: {exc}") from None
        return JSONResponse(
            {"status": answer.status_code, "content_type": answer.headers.get("content-type"), "body": answer.text}
        )

    def _signed(self, target: str, signed_url: str, token: str) -> tuple[bytes, str, str, str]:
        """The body, its content type, the target URL and the signature; `altered` is applied after signing."""
        if self.as_json:
            query = "bodySHA256=" + hashlib.sha256(_json(dict(self.fields))).hexdigest()
            signature = twilio_signature(token, _with_query(signed_url, query))
            return (
                _json({**dict(self.fields), **self.altered}),
                "application/json",
                _with_query(target, query),
                signature,
            )
        signature = twilio_signature(token, signed_url, self.fields)
        names = {name for name, _ in self.fields}
        sent = [(name, self.altered.get(name, value)) for name, value in self.fields]
        sent += [(name, value) for name, value in self.altered.items() if name not in names]
        return urlencode(sent).encode(), "application/x-www-form-urlencoded", target, signature


def _authenticate(twilio: TwilioState, request: Request, account_sid: str) -> tuple[str | None, Response | None]:
    """The basic-auth user, and Twilio's 401 (or 404 for another account's resource) when it does not hold."""
    user, password = _basic(request.headers.get("authorization"))
    account = twilio.accounts.get(user or "")
    if user is None or account is None or not hmac.compare_digest(account.auth_token.encode(), password.encode()):
        refusal = _twilio_error(401, 20003, "Authenticate")
        refusal.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return user, refusal
    if user != account_sid:
        return user, _twilio_error(404, 20404, f"The requested resource for account {account_sid} was not found")
    return user, None


def _refuse_message(twilio: TwilioState, account_sid: str, pairs: list[tuple[str, str]]) -> Response | None:
    """Twilio's own checks of a send: the parameters it requires, and WhatsApp's 24-hour window."""
    form = dict(pairs)
    if not form.get("To"):
        return _twilio_error(400, 21604, "A 'To' phone number is required.")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return _twilio_error(400, 21603, "A 'From' phone number is required.")
    if not form.get("Body") and not form.get("MediaUrl") and not form.get("ContentSid"):
        return _twilio_error(400, 21619, "A text message body or media urls must be specified.")
    template = _template_refusal(form)
    if template is not None:
        return template
    whatsapp = form["To"].startswith(WHATSAPP)
    if whatsapp and not form.get("ContentSid") and not twilio.window_open(account_sid, _number(form["To"])):
        return _twilio_error(
            400,
            63016,
            "Failed to send freeform message because you are outside the allowed window. "
            "If you are using WhatsApp, please use a Message Template.",
        )
    return None


def _template_refusal(form: dict[str, str]) -> Response | None:
    """A Content SID must name a template (`HX` + 32 hex); its variables are a JSON object of text by number."""
    content_sid = form.get("ContentSid")
    if content_sid is None:
        return None
    if not CONTENT_SID.fullmatch(content_sid):
        return _twilio_error(400, 21655, "The ContentSid is Invalid.")
    raw = form.get("ContentVariables")
    if raw is None:
        return None
    try:
        variables = json.loads(raw)
    except json.JSONDecodeError:
        variables = None
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        return _twilio_error(400, 21656, "The ContentVariables Parameter is invalid.")
    return None


def _sent(sid: str, account_sid: str, pairs: list[tuple[str, str]]) -> SentMessage:
    form = dict(pairs)
    return SentMessage(
        sid=sid,
        account_sid=account_sid,
        to=form["To"],
        from_=form.get("From", ""),
        body=form.get("Body"),
        media_urls=[value for name, value in pairs if name == "MediaUrl"],
        status_callback=form.get("StatusCallback"),
        content_sid=form.get("ContentSid"),
        content_variables=form.get("ContentVariables"),
    )


def _message_resource(message: SentMessage) -> dict[str, Any]:
    return {
        "sid": message.sid,
        "account_sid": message.account_sid,
        "to": message.to,
        "from": message.from_,
        "body": message.body,
        "status": message.status,
        "num_media": str(len(message.media_urls)),
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "date_created": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
        "error_code": None,
        "error_message": None,
        "uri": f"/2010-04-01/Accounts/{message.account_sid}/Messages/{message.sid}.json",
    }


def _twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status_code=status,
    )


def _basic(header: str | None) -> tuple[str | None, str]:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None, ""
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    return (user, password) if sep else (None, "")


def _hide_token(state: SimulatorState, user: str | None) -> None:
    """The request just recorded keeps who authenticated, never the token: `Basic <account sid>:***`."""
    headers = state.requests[-1].headers
    if "authorization" in headers:
        headers["authorization"] = f"Basic {user}:***" if user else "<unreadable>"


def _token_of(twilio: TwilioState, account_sid: str) -> str:
    account = twilio.accounts.get(account_sid)
    if account is None:
        raise ApiError(404, "unknown_account", f"register {account_sid} at PUT {CONTROL}/accounts/{{sid}} first")
    return account.auth_token


def _form(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """The form as JSON: one value per name, a list where the name repeats (MediaUrl)."""
    form: dict[str, str | list[str]] = {}
    for name, value in pairs:
        current = form.get(name)
        form[name] = value if current is None else [*([current] if isinstance(current, str) else current), value]
    return form


def _number(value: str) -> str:
    return value[len(WHATSAPP) :] if value.startswith(WHATSAPP) else value


def _json(value: dict[str, str]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query
