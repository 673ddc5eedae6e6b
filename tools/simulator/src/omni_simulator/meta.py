"""Meta's side: the Graph API under /graph (Messenger and WhatsApp Cloud send, profiles, media) and webhook pushes.

The API side answers as Graph does: tokens as `?access_token=` (Messenger) or a bearer header
(WhatsApp), errors `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`. Recorded
requests keep the exact body; `signature_valid` says whether the call's token was accepted and the
token itself is never recorded nor answered. The control side under `/_sim/meta/` registers pages,
phone numbers, profiles and media, and pushes webhooks signed with X-Hub-Signature-256 to ingress.

Sends keep the customer-service window as Meta does, from the customer's last message pushed through the
simulator (its own timestamp) or set at `/_sim/meta/windows`: Messenger refuses RESPONSE and UPDATE after 24 hours
and HUMAN_AGENT after 7 days (error 10/2018278); WhatsApp refuses anything but a template after 24 hours (131047).
Attachment links are fetched before answering, as Meta does, and the bytes recorded with the send; a Messenger
attachment that cannot be fetched is refused (100/2018047). `POST /{page-id}/subscribed_apps` subscribes a page.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from omni_providers.signatures import hmac_sha256_signature
from omni_runtime.service import Slot
from omni_runtime.web import ApiError, parse_body, read_json
from omni_simulator.media import fetch_all
from omni_simulator.messenger import _apply, _json_or_none, _record, _status
from omni_simulator.state import ReceivedFile, SimulatorState, StoredFile

PREFIX = "/graph"
CONTROL = "/_sim/meta"
SIGNATURE_HEADER = "X-Hub-Signature-256"
MEDIA_KINDS = ("image", "audio", "video", "file")
WEBHOOK_PATHS = {"messenger": "/webhooks/messenger", "whatsapp": "/webhooks/whatsapp"}
WHATSAPP_MEDIA = ("image", "video", "audio", "document", "sticker")
# Messenger's message tags; HUMAN_AGENT lets a reply go until 7 days after the customer's last message.
MESSAGE_TAGS = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT")
REPLY_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
PAGE_FIELDS = frozenset(
    {"messages", "messaging_postbacks", "message_deliveries", "message_reads", "message_echoes", "messaging_optins"}
)


@dataclass
class Account:
    """A page (Messenger) or a phone number (WhatsApp) and the token that may act for it."""

    kind: Literal["page", "phone_number"]
    access_token: str = field(repr=False)
    name: str


@dataclass
class Media:
    file: StoredFile
    sha256: str


@dataclass
class MetaState:
    accounts: dict[str, Account] = field(default_factory=dict)
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    # (page id or phone number id, customer id) -> when the customer last wrote, as Meta timed it.
    last_inbound: dict[tuple[str, str], datetime] = field(default_factory=dict)
    # page id -> the fields the app is subscribed to (POST /{page-id}/subscribed_apps)
    subscriptions: dict[str, list[str]] = field(default_factory=dict)

    def wrote(self, account: str, customer: str, at: datetime) -> None:
        key = (account, customer)
        self.last_inbound[key] = max(at, self.last_inbound.get(key, at))

    def since_last(self, account: str, customer: str) -> timedelta | None:
        last = self.last_inbound.get((account, customer))
        return None if last is None else datetime.now(UTC) - last


class AccountBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["page", "phone_number"]
    access_token: str = Field(min_length=1)
    name: str = "Simulated"


class ProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_name: str | None = None
    last_name: str | None = None
    profile_pic: str | None = None


class MetaPush(BaseModel):
    """A webhook to push: `body` (any JSON) or `raw` (exact text), signed with `app_secret` unless told otherwise."""

    model_config = ConfigDict(extra="forbid")

    ingress_url: str = Field(pattern=r"^https?://")
    app_secret: str | None = None
    body: Any = None
    raw: str | None = None
    signature: str | None = None
    omit_signature: bool = False
    # Signed first, then changed: what a tampering proxy would do.
    alter_after_signing: bool = False

    @model_validator(mode="after")
    def _complete(self) -> "MetaPush":
        if (self.body is None) == (self.raw is None):
            raise ValueError("give exactly one of body and raw")
        if self.app_secret is None and self.signature is None and not self.omit_signature:
            raise ValueError("app_secret is required unless signature or omit_signature is given")
        return self

    def signed(self) -> tuple[bytes, dict[str, str]]:
        raw = self.raw.encode() if self.raw is not None else json.dumps(self.body).encode()
        headers = {"Content-Type": "application/json"}
        if not self.omit_signature:
            signature = hmac_sha256_signature(self.app_secret or "", raw)
            headers[SIGNATURE_HEADER] = self.signature if self.signature is not None else signature
        if self.alter_after_signing:
            raw += b" "
        return raw, headers


class WindowBody(BaseModel):
    """`POST /_sim/meta/windows`: when the customer last wrote to a page or number: `ago_seconds` ago, or just now
    (`open`) or 25 hours ago (not `open`)."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1)
    customer: str = Field(min_length=1)
    open: bool = True
    ago_seconds: float | None = Field(default=None, ge=0)


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ingress_url: str = Field(pattern=r"^https?://")
    provider: Literal["messenger", "whatsapp"]
    verify_token: str
    challenge: str = "1158201444"
    mode: str = "subscribe"


def routes(state: SimulatorState, http: Slot[httpx.AsyncClient]) -> list[BaseRoute]:
    meta = state.extras.setdefault("meta", MetaState())
    assert isinstance(meta, MetaState)

    async def send(request: Request) -> Response:
        object_id: str = request.path_params["object_id"]
        raw = await request.body()
        payload = _json_or_none(raw)
        provider = "whatsapp" if isinstance(payload, dict) and "messaging_product" in payload else "messenger"
        token_refusal = _token_refusal(meta, object_id, _token(request, provider))
        refusal = token_refusal or _send_refusal(provider, payload)
        refusal = refusal or _window_refusal(meta, provider, object_id, payload)
        answer_id = f"wamid.{state.next_answer_id()}" if provider == "whatsapp" else f"m_{state.next_answer_id()}"
        fault = state.take_fault(request.url.path)
        files: list[ReceivedFile] = []
        if refusal is None and (fault is None or fault.status is None):
            # Meta fetches the attachment while it takes the send; Messenger refuses one it cannot get.
            files = await fetch_all(http.get(), _media_urls(provider, payload))
            if provider == "messenger" and not all(f.ok for f in files):
                refusal = _graph_error(400, 100, "(#100) Upload attachment failure.", "OAuthException", subcode=2018047)
        status = _status(fault, refusal.status_code if refusal else 200)
        ok = status == 200
        _record(
            state,
            request,
            fault,
            status,
            provider=provider,
            raw=raw,
            payload=payload,
            signature_valid=token_refusal is None,
            answer_id=answer_id if ok else None,
            files=files,
        )
        _hide_token(state)
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if refusal is not None:
            return refusal
        assert isinstance(payload, dict)
        if provider == "whatsapp":
            to = payload["to"]
            return JSONResponse(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": answer_id}],
                }
            )
        return JSONResponse({"recipient_id": payload["recipient"]["id"], "message_id": answer_id})

    async def lookup(request: Request) -> Response:
        """`GET /{id}`: `me` (the page of the token), a phone number, a Messenger profile, or a WhatsApp media."""
        object_id: str = request.path_params["object_id"]
        fault = state.take_fault(request.url.path)
        answer = _lookup(meta, object_id, _token(request, None), request)
        _record(state, request, fault, _status(fault, answer.status_code))
        _hide_token(state)
        faulted = await _apply(request, fault)
        return faulted if faulted is not None else answer

    async def media_download(request: Request) -> Response:
        media_id: str = request.path_params["media_id"]
        fault = state.take_fault(request.url.path)
        media = meta.media.get(media_id)
        token_ok = _whatsapp_token_ok(meta, _token(request, "whatsapp"))
        status = 401 if not token_ok else 404 if media is None else 200
        _record(state, request, fault, _status(fault, status), signature_valid=token_ok)
        _hide_token(state)
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if not token_ok:
            return _graph_error(401, 190, "Invalid OAuth access token", "OAuthException")
        if media is None:
            return Response("Not Found", status_code=404)
        return Response(media.file.content, media_type=media.file.content_type)

    async def put_account(request: Request) -> Response:
        object_id: str = request.path_params["object_id"]
        body = parse_body(AccountBody, await read_json(request))
        meta.accounts[object_id] = Account(body.kind, body.access_token, body.name)
        return JSONResponse({"id": object_id, "kind": body.kind, "name": body.name})

    async def put_profile(request: Request) -> Response:
        psid: str = request.path_params["psid"]
        body = parse_body(ProfileBody, await read_json(request))
        meta.profiles[psid] = {k: v for k, v in body.model_dump().items() if v is not None}
        return JSONResponse({"id": psid, **meta.profiles[psid]})

    async def put_media(request: Request) -> Response:
        media_id: str = request.path_params["media_id"]
        content = await request.body()
        content_type = request.headers.get("content-type", "application/octet-stream")
        media = Media(StoredFile(content, content_type), hashlib.sha256(content).hexdigest())
        meta.media[media_id] = media
        return JSONResponse(
            {"id": media_id, "mime_type": content_type, "sha256": media.sha256, "file_size": len(content)},
            status_code=201,
        )

    async def push(request: Request) -> Response:
        provider = request.url.path.rsplit("/", 1)[-1]
        body = parse_body(MetaPush, await read_json(request))
        raw, headers = body.signed()
        # The customer wrote: Meta's window opens whatever ingress answers.
        for account, customer, at in _customer_messages(provider, _json_or_none(raw)):
            meta.wrote(account, customer, at)
        url = body.ingress_url.rstrip("/") + WEBHOOK_PATHS[provider]
        try:
            response = await http.get().post(url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(502, "push_failed", f"{type(exc).__name__}: {exc}") from None
        return JSONResponse({"status": response.status_code, "body": _json_or_text(response)})

    async def verify(request: Request) -> Response:
        """Meta's subscription check: GET the webhook with hub.* parameters, as the app dashboard does."""
        body = parse_body(VerifyBody, await read_json(request))
        params = {"hub.mode": body.mode, "hub.verify_token": body.verify_token, "hub.challenge": body.challenge}
        url = body.ingress_url.rstrip("/") + WEBHOOK_PATHS[body.provider]
        try:
            response = await http.get().get(url, params=params)
        except httpx.HTTPError as exc:
            raise ApiError(502, "verify_failed", f"{type(exc).__name__}: {exc}") from None
        return JSONResponse(
            {
                "status": response.status_code,
                "body": response.text,
                "content_type": response.headers.get("content-type"),
                "verified": response.status_code == 200 and response.text == body.challenge,
            }
        )

    async def subscribe(request: Request) -> Response:
        """`POST /{page-id}/subscribed_apps?subscribed_fields=...`, page token: the app gets the page's events."""
        page_id: str = request.path_params["object_id"]
        raw = await request.body()
        params = {**dict(parse_qsl(raw.decode(errors="replace"))), **dict(request.query_params)}
        params.pop("access_token", None)
        fields = [f for f in str(params.get("subscribed_fields", "")).split(",") if f]
        account = meta.accounts.get(page_id)
        token = _token(request, "messenger")
        refusal = _token_refusal(meta, page_id, token)
        if refusal is None and (account is None or account.kind != "page"):
            refusal = _graph_error(400, 100, f"(#100) Object with ID '{page_id}' is not a page", "GraphMethodException")
        if refusal is None and (not fields or not set(fields) <= PAGE_FIELDS):
            wrong = "(#100) Param subscribed_fields must be a list of page fields"
            refusal = _graph_error(400, 100, wrong, "OAuthException")
        fault = state.take_fault(request.url.path)
        status = _status(fault, refusal.status_code if refusal else 200)
        _record(state, request, fault, status, provider="messenger", raw=raw, payload=params)
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if refusal is not None:
            return refusal
        meta.subscriptions[page_id] = fields
        return JSONResponse({"success": True})

    async def subscribed(request: Request) -> Response:
        page_id: str = request.path_params["object_id"]
        fields = meta.subscriptions.get(page_id)
        apps = [{"name": "Simulated app", "id": "1234567890", "subscribed_fields": fields}] if fields else []
        return JSONResponse({"data": apps})

    async def set_window(request: Request) -> Response:
        body = parse_body(WindowBody, await read_json(request))
        ago = body.ago_seconds if body.ago_seconds is not None else 0.0 if body.open else 25 * 3600.0
        meta.last_inbound[(body.account, body.customer)] = datetime.now(UTC) - timedelta(seconds=ago)
        return JSONResponse({"account": body.account, "customer": body.customer, "ago_seconds": ago})

    async def reset(request: Request) -> Response:
        meta.accounts.clear()
        meta.profiles.clear()
        meta.media.clear()
        meta.last_inbound.clear()
        meta.subscriptions.clear()
        return Response(status_code=204)

    return [
        Route(PREFIX + "/{version}/{object_id}/messages", send, methods=["POST"]),
        Route(PREFIX + "/{version}/{object_id}/subscribed_apps", subscribe, methods=["POST"]),
        Route(PREFIX + "/{version}/{object_id}/subscribed_apps", subscribed, methods=["GET"]),
        Route(PREFIX + "/media/{media_id}", media_download, methods=["GET"], name="meta_media"),
        Route(PREFIX + "/{version}/{object_id}", lookup, methods=["GET"]),
        Route(CONTROL + "/accounts/{object_id}", put_account, methods=["PUT"]),
        Route(CONTROL + "/profiles/{psid}", put_profile, methods=["PUT"]),
        Route(CONTROL + "/media/{media_id}", put_media, methods=["PUT"]),
        Route(CONTROL + "/push/messenger", push, methods=["POST"]),
        Route(CONTROL + "/push/whatsapp", push, methods=["POST"]),
        Route(CONTROL + "/verify", verify, methods=["POST"]),
        Route(CONTROL + "/windows", set_window, methods=["POST"]),
        Route(CONTROL + "/reset", reset, methods=["POST"]),
    ]


OAUTH_REFUSAL = "Invalid OAuth access token - Cannot parse access token"


def _lookup(meta: MetaState, object_id: str, token: str | None, request: Request) -> Response:
    if not token:
        return _graph_error(400, 2500, "An active access token must be used to query information.", "OAuthException")
    if object_id == "me":
        return _me(meta, token)
    if object_id in meta.accounts:
        return _account(meta.accounts[object_id], object_id, token)
    if object_id in meta.profiles:
        fields = (request.query_params.get("fields") or "first_name,last_name,profile_pic").split(",")
        profile = meta.profiles[object_id]
        return JSONResponse({"id": object_id, **{f: profile[f] for f in fields if f in profile}})
    if object_id in meta.media:
        return _media_info(meta, meta.media[object_id], object_id, token, request)
    return _graph_error(
        400,
        100,
        f"Unsupported get request. Object with ID '{object_id}' does not exist",
        "GraphMethodException",
        subcode=33,
    )


def _me(meta: MetaState, token: str) -> Response:
    page = next(
        ((pid, a) for pid, a in meta.accounts.items() if a.kind == "page" and _same(a.access_token, token)), None
    )
    if page is None:
        return _graph_error(400, 190, OAUTH_REFUSAL, "OAuthException")
    return JSONResponse({"id": page[0], "name": page[1].name})


def _account(account: Account, object_id: str, token: str) -> Response:
    if not _same(account.access_token, token):
        return _graph_error(400, 190, OAUTH_REFUSAL, "OAuthException")
    if account.kind == "phone_number":
        return JSONResponse(
            {
                "id": object_id,
                "verified_name": account.name,
                "display_phone_number": "+1 555 0100",
                "quality_rating": "GREEN",
            }
        )
    return JSONResponse({"id": object_id, "name": account.name})


def _media_info(meta: MetaState, media: Media, object_id: str, token: str, request: Request) -> Response:
    if not _whatsapp_token_ok(meta, token):
        return _graph_error(401, 190, "Invalid OAuth access token", "OAuthException")
    return JSONResponse(
        {
            "messaging_product": "whatsapp",
            "url": str(request.url_for("meta_media", media_id=object_id)),
            "mime_type": media.file.content_type,
            "sha256": media.sha256,
            "file_size": len(media.file.content),
            "id": object_id,
        }
    )


def _token(request: Request, provider: str | None) -> str | None:
    """The call's token: `?access_token=` (Messenger's way) or `Authorization: Bearer` (WhatsApp's way)."""
    query = request.query_params.get("access_token")
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    if provider == "messenger":
        return query or bearer
    if provider == "whatsapp":
        return bearer or query
    return query or bearer


def _token_refusal(meta: MetaState, object_id: str, token: str | None) -> Response | None:
    if not token:
        return _graph_error(400, 2500, "An active access token must be used to query information.", "OAuthException")
    account = meta.accounts.get(object_id)
    if account is not None and not _same(account.access_token, token):
        return _graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token", "OAuthException")
    return None


def _whatsapp_token_ok(meta: MetaState, token: str | None) -> bool:
    numbers = [a for a in meta.accounts.values() if a.kind == "phone_number"]
    if not token:
        return False
    return not numbers or any(_same(a.access_token, token) for a in numbers)


def _send_refusal(provider: str, payload: Any) -> Response | None:
    """What Graph says of a malformed send body; None when it is well formed."""
    problem = _whatsapp_problem(payload) if provider == "whatsapp" else _messenger_problem(payload)
    return _graph_error(400, 100, f"(#100) {problem}", "OAuthException") if problem else None


def _messenger_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "The body must be a JSON object"
    recipient = payload.get("recipient")
    if not isinstance(recipient, dict) or not recipient.get("id"):
        return "The parameter recipient is required"
    if payload.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        return "Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}"
    if payload.get("messaging_type") == "MESSAGE_TAG" and payload.get("tag") not in MESSAGE_TAGS:
        return f"Param tag must be one of {{{', '.join(MESSAGE_TAGS)}}}"
    message = payload.get("message")
    if not isinstance(message, dict) or ("text" in message) == ("attachment" in message):
        return "The parameter message must have exactly one of text and attachment"
    return _messenger_content_problem(message)


def _messenger_content_problem(message: dict[str, Any]) -> str | None:
    if "attachment" in message:
        attachment = message["attachment"] if isinstance(message["attachment"], dict) else {}
        media = attachment.get("payload")
        if not isinstance(media, dict) or not media.get("url") or attachment.get("type") not in MEDIA_KINDS:
            return "Param message[attachment] must have a type and a payload url"
    elif not isinstance(message["text"], str) or not message["text"]:
        return "Param message[text] must be a non-empty UTF-8 encoded string"
    return None


def _whatsapp_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required"
    if not isinstance(payload.get("to"), str) or not payload["to"]:
        return "The parameter to is required"
    kind = payload.get("type", "text")
    content = payload.get(kind)
    if kind == "text":
        return None if isinstance(content, dict) and content.get("body") else "Param text['body'] is required"
    if kind in WHATSAPP_MEDIA:
        return (
            None
            if isinstance(content, dict) and (content.get("link") or content.get("id"))
            else (f"Param {kind} must have a link or an id")
        )
    if kind == "template":
        return _template_problem(content)
    return f"Param type {kind!r} is not supported here"


def _template_problem(template: Any) -> str | None:
    """A `type: template` message: a name, a language code, components of text parameters (Cloud API shape)."""
    if not isinstance(template, dict) or not isinstance(template.get("name"), str) or not template["name"]:
        return "Param template['name'] is required"
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str) or not language["code"]:
        return "Param template['language']['code'] is required"
    components = template.get("components", [])
    if not isinstance(components, list):
        return "Param template['components'] must be an array"
    for component in components:
        if not isinstance(component, dict) or component.get("type") not in ("header", "body", "button"):
            return "Param template['components'][]['type'] must be one of {header, body, button}"
        for parameter in component.get("parameters", []):
            if not isinstance(parameter, dict) or parameter.get("type") != "text" or not parameter.get("text"):
                return "Param template['components'][]['parameters'][] must be {type: text, text: <non-empty>}"
    return None


def _window_refusal(meta: MetaState, provider: str, account: str, payload: Any) -> Response | None:
    """Meta's customer-service window over a well-formed send (None: the send may go)."""
    assert isinstance(payload, dict)
    if provider == "whatsapp":
        if payload.get("type") == "template":
            return None
        since = meta.since_last(account, str(payload["to"]))
        if since is not None and since < REPLY_WINDOW:
            return None
        return JSONResponse(
            {
                "error": {
                    "message": "(#131047) Re-engagement message",
                    "type": "OAuthException",
                    "code": 131047,
                    "error_data": {
                        "messaging_product": "whatsapp",
                        "details": "Message failed to send because more than 24 hours have passed since the "
                        "customer last replied to this number.",
                    },
                    "fbtrace_id": "ASimulatedTrace",
                }
            },
            status_code=400,
        )
    since = meta.since_last(account, str(payload["recipient"]["id"]))
    tag = payload.get("tag") if payload.get("messaging_type") == "MESSAGE_TAG" else None
    window = HUMAN_AGENT_WINDOW if tag == "HUMAN_AGENT" else REPLY_WINDOW
    if tag not in (None, "HUMAN_AGENT") or (since is not None and since < window):
        return None
    return _graph_error(
        400,
        10,
        "(#10) This message is sent outside of allowed window. Learn more about the new policy here: "
        "https://developers.facebook.com/docs/messenger-platform/policy-overview",
        "OAuthException",
        subcode=2018278,
    )


def _media_urls(provider: str, payload: Any) -> list[str]:
    """The attachment links a well-formed send names, which Meta fetches."""
    assert isinstance(payload, dict)
    if provider == "whatsapp":
        content = payload.get(str(payload.get("type")))
        link = content.get("link") if isinstance(content, dict) else None
        return [link] if isinstance(link, str) and link else []
    attachment = payload["message"].get("attachment")
    url = attachment["payload"]["url"] if isinstance(attachment, dict) else None
    return [url] if isinstance(url, str) else []


def _customer_messages(provider: str, body: Any) -> list[tuple[str, str, datetime]]:
    """(page or number, customer, when) of each customer message in a webhook body, by Meta's timestamps."""
    entries = body.get("entry") if isinstance(body, dict) else None
    of_entry = _messenger_customers if provider == "messenger" else _whatsapp_customers
    return [found for entry in _dicts(entries) for found in of_entry(entry)]


def _messenger_customers(entry: dict[str, Any]) -> list[tuple[str, str, datetime]]:
    return [
        (str(entry.get("id")), str((item.get("sender") or {}).get("id")), _moment(item.get("timestamp"), 1000))
        for item in _dicts(entry.get("messaging"))
        if isinstance(item.get("message"), dict) and not item["message"].get("is_echo")
    ]


def _whatsapp_customers(entry: dict[str, Any]) -> list[tuple[str, str, datetime]]:
    found: list[tuple[str, str, datetime]] = []
    for change in _dicts(entry.get("changes")):
        value = change.get("value")
        if not isinstance(value, dict):
            continue
        number = str((value.get("metadata") or {}).get("phone_number_id"))
        found += [
            (number, str(m["from"]), _moment(m.get("timestamp"), 1))
            for m in _dicts(value.get("messages"))
            if m.get("from")
        ]
    return found


def _dicts(items: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array (nothing for anything else)."""
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _moment(stamp: Any, per_second: int) -> datetime:
    try:
        return datetime.fromtimestamp(float(stamp) / per_second, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _graph_error(status: int, code: int, message: str, kind: str, subcode: int | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "ASimulatedTrace"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return JSONResponse({"error": error}, status_code=status)


def _hide_token(state: SimulatorState) -> None:
    """The request just recorded keeps that a bearer token came, never the token itself."""
    headers = state.requests[-1].headers
    if "authorization" in headers:
        headers["authorization"] = "Bearer ***"


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text
