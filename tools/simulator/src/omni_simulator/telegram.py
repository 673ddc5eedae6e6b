"""Telegram's side: the Bot API under /telegram (send, getUpdates, getFile, files, setWebhook) and webhook pushes.

Bot API answers are `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description",
"parameters"?}`; an armed fault without a body of its own is answered in that error shape, with
`parameters.retry_after` from the fault. Control endpoints live under `/_sim/telegram/`.
"""

import asyncio
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from omni_providers.signatures import TELEGRAM_SECRET_HEADER
from omni_runtime.service import Slot
from omni_runtime.web import ApiError, parse_body, read_json
from omni_simulator.media import read_upload
from omni_simulator.messenger import _apply, _disconnected, _hold, _json_or_none, _record, _status
from omni_simulator.state import Fault, ReceivedFile, SimulatorState

PREFIX = "/telegram"
PROVIDER = "telegram"
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
# Uploads: photos of at most 10 MB, other files of at most 50 MB.
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
TOKEN = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{1,200}$")
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
GET_UPDATES_DEFAULTS = (("offset", 0), ("limit", 100), ("timeout", 0))
SEND_METHODS = {
    "sendMessage": "text",
    "sendPhoto": "photo",
    "sendDocument": "document",
    "sendAudio": "audio",
    "sendVideo": "video",
    "sendVoice": "voice",
}


@dataclass
class Bot:
    """One bot's server side: its unconfirmed updates, its webhook and the message ids it gave out."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    next_update_id: int = 1
    # Every update below this id was confirmed by a getUpdates offset and is gone.
    confirmed_offset: int = 0
    webhook_url: str = ""
    webhook_secret: str | None = None
    message_ids: dict[str, Iterator[int]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, update: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(update.get("update_id"), int):
            update = {"update_id": self.next_update_id, **update}
        self.next_update_id = max(self.next_update_id, int(update["update_id"]) + 1)
        return update

    def enqueue(self, update: dict[str, Any]) -> dict[str, Any]:
        update = self.add(update)
        self.updates.append(update)
        self.arrived.set()
        return update

    def confirm(self, offset: int) -> None:
        if offset > self.confirmed_offset:
            self.confirmed_offset = offset
            self.updates = [u for u in self.updates if u["update_id"] >= offset]

    def next_message_id(self, chat_id: str) -> int:
        return next(self.message_ids.setdefault(chat_id, itertools.count(1)))


@dataclass
class SimFile:
    content: bytes
    content_type: str
    file_path: str
    file_size: int


@dataclass
class TelegramState:
    bots: dict[str, Bot] = field(default_factory=dict)
    files: dict[str, SimFile] = field(default_factory=dict)
    # user id -> profile photo file ids, newest first
    profiles: dict[int, list[str]] = field(default_factory=dict)
    # update_id of pushes that name no bot
    push_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def bot(self, token: str) -> Bot:
        return self.bots.setdefault(token, Bot())


def telegram_state(state: SimulatorState) -> TelegramState:
    found = state.extras.get(PROVIDER)
    if not isinstance(found, TelegramState):
        found = state.extras[PROVIDER] = TelegramState()
    return found


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    answer_id: str | None = None


def ok(result: Any, answer_id: str | None = None) -> Answer:
    return Answer(200, {"ok": True, "result": result}, answer_id)


def error(code: int, description: str, **parameters: Any) -> Answer:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Answer(code, body)


class PushBody(BaseModel):
    """`POST /_sim/telegram/push`: deliver one update as Telegram's webhook would.

    With `token`, to the URL and secret that bot's setWebhook registered; otherwise to
    `{ingress_url}/webhooks/telegram/{channel_id}` with `secret_token`. `raw` replaces the JSON body.
    """

    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    ingress_url: str | None = Field(default=None, pattern=r"^https?://")
    channel_id: str | None = None
    secret_token: str | None = None
    omit_secret: bool = False
    update: Any = None
    raw: str | None = None

    @model_validator(mode="after")
    def _has_target(self) -> "PushBody":
        if self.token is None and (self.ingress_url is None or self.channel_id is None):
            raise ValueError("give token (a bot with a webhook) or ingress_url and channel_id")
        return self


class UpdatesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(pattern=TOKEN.pattern)
    updates: list[dict[str, Any]] = Field(min_length=1)


class ProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    photos: list[str] = Field(default_factory=list)


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(pattern=TOKEN.pattern)
    url: str = ""
    secret_token: str | None = None


def routes(state: SimulatorState, http: Slot[httpx.AsyncClient]) -> list[BaseRoute]:
    """The Bot API under PREFIX and its control endpoints under /_sim/telegram."""
    sim = telegram_state(state)

    async def bot_method(request: Request) -> Response:
        token: str = request.path_params["token"]
        method: str = request.path_params["method"]
        raw = await request.body()
        params, uploads = await _params(request, raw)
        fault = state.take_fault(request.url.path)
        if fault is not None and fault.status is not None:
            _record(state, request, fault, fault.status, provider=PROVIDER, raw=raw, payload=params, files=uploads)
            return await _fault_answer(request, fault)
        if fault is not None and fault.delay:
            await _hold(request, fault.delay)
        answer = await _answer(sim, request, token, method, params, uploads)
        _record(
            state,
            request,
            fault,
            answer.status,
            provider=PROVIDER,
            raw=b"" if uploads else raw,  # the uploads' bytes are kept as files, not as text
            payload=params,
            answer_id=answer.answer_id,
            files=uploads,
        )
        return JSONResponse(answer.body, status_code=answer.status)

    async def download(request: Request) -> Response:
        token: str = request.path_params["token"]
        path: str = request.path_params["file_path"]
        fault = state.take_fault(request.url.path)
        stored = next((f for f in sim.files.values() if f.file_path == path), None)
        found = TOKEN.fullmatch(token) is not None and stored is not None
        _record(state, request, fault, _status(fault, 200 if found else 404))
        faulted = await _apply(request, fault)
        if faulted is not None:
            return faulted
        if not found or stored is None:
            return JSONResponse(error(404, "Not Found").body, status_code=404)
        return Response(stored.content, media_type=stored.content_type)

    async def push(request: Request) -> Response:
        body = parse_body(PushBody, await read_json(request))
        url, headers, content = _push_request(sim, body)
        try:
            answer = await http.get().post(url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(502, "push_failed", f"{type(exc).__name__}: {exc}") from None
        try:
            parsed: Any = answer.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            parsed = answer.text
        return JSONResponse({"status": answer.status_code, "body": parsed, "update": _json_or_none(content)})

    async def enqueue(request: Request) -> Response:
        body = parse_body(UpdatesBody, await read_json(request))
        bot = sim.bot(body.token)
        added = [bot.enqueue(update) for update in body.updates]
        return JSONResponse({"update_ids": [u["update_id"] for u in added]}, status_code=201)

    async def pending(request: Request) -> Response:
        bot = sim.bot(request.query_params.get("token", ""))
        return JSONResponse(
            {
                "pending": [u["update_id"] for u in bot.updates],
                "confirmed_offset": bot.confirmed_offset,
                "webhook_url": bot.webhook_url,
            }
        )

    async def put_file(request: Request) -> Response:
        file_id: str = request.path_params["file_id"]
        content = await request.body()
        query = request.query_params
        size = query.get("file_size", "")
        stored = SimFile(
            content=content,
            content_type=request.headers.get("content-type", "application/octet-stream"),
            file_path=query.get("file_path") or f"files/{file_id}",
            file_size=int(size) if size.isdigit() else len(content),
        )
        sim.files[file_id] = stored
        return JSONResponse({"file_id": file_id, "file_path": stored.file_path, "file_size": stored.file_size}, 201)

    async def put_profile(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        sim.profiles[user_id] = parse_body(ProfileBody, await read_json(request)).photos
        return JSONResponse({"user_id": user_id})

    async def put_webhook(request: Request) -> Response:
        body = parse_body(WebhookBody, await read_json(request))
        bot = sim.bot(body.token)
        bot.webhook_url, bot.webhook_secret = body.url, body.secret_token
        return JSONResponse({"webhook_url": bot.webhook_url})

    async def reset(request: Request) -> Response:
        sim.bots.clear()
        sim.files.clear()
        sim.profiles.clear()
        return Response(status_code=204)

    return [
        Route(f"{PREFIX}/bot{{token}}/{{method}}", bot_method, methods=["GET", "POST"]),
        Route(f"{PREFIX}/file/bot{{token}}/{{file_path:path}}", download, methods=["GET"]),
        Route("/_sim/telegram/push", push, methods=["POST"]),
        Route("/_sim/telegram/updates", enqueue, methods=["POST"]),
        Route("/_sim/telegram/updates", pending, methods=["GET"]),
        Route("/_sim/telegram/files/{file_id}", put_file, methods=["PUT"]),
        Route("/_sim/telegram/profiles/{user_id:int}", put_profile, methods=["PUT"]),
        Route("/_sim/telegram/webhook", put_webhook, methods=["PUT"]),
        Route("/_sim/telegram/reset", reset, methods=["POST"]),
    ]


async def _answer(
    sim: TelegramState,
    request: Request,
    token: str,
    method: str,
    params: dict[str, Any],
    uploads: list[ReceivedFile],
) -> Answer:
    if not TOKEN.fullmatch(token):
        return error(401, "Unauthorized")
    bot = sim.bot(token)
    if method in SEND_METHODS:
        too_big = _upload_too_big(SEND_METHODS[method], uploads)
        return too_big if too_big is not None else _send(bot, method, params)
    if method == "getUpdates":
        return await _get_updates(bot, request, params)
    handlers = {
        "getMe": lambda: ok({"id": int(token.partition(":")[0]), "is_bot": True, "first_name": "Simulated bot"}),
        "setWebhook": lambda: _set_webhook(bot, params),
        "deleteWebhook": lambda: _delete_webhook(bot, params),
        "getWebhookInfo": lambda: ok({"url": bot.webhook_url, "pending_update_count": len(bot.updates)}),
        "getFile": lambda: _get_file(sim, params),
        "getUserProfilePhotos": lambda: _profile_photos(sim, params),
    }
    handler = handlers.get(method)
    return handler() if handler is not None else error(404, "Not Found")


def _upload_too_big(field_name: str, uploads: list[ReceivedFile]) -> Answer | None:
    upload = next((u for u in uploads if u.part == field_name), None)
    if upload is None:
        return None
    if len(upload.content) > MAX_UPLOAD_BYTES:
        return error(413, "Request Entity Too Large")
    if field_name == "photo" and len(upload.content) > MAX_PHOTO_BYTES:
        return error(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    return None


def _send(bot: Bot, method: str, params: dict[str, Any]) -> Answer:
    chat_id = params.get("chat_id")
    if chat_id in (None, ""):
        return error(400, "Bad Request: chat_id is empty")
    field_name = SEND_METHODS[method]
    value = params.get(field_name)
    if not value:
        what = "message text is empty" if field_name == "text" else f"there is no {field_name} in the request"
        return error(400, f"Bad Request: {what}")
    if field_name == "text" and len(str(value)) > 4096:
        return error(400, "Bad Request: message is too long")
    message_id = bot.next_message_id(str(chat_id))
    result: dict[str, Any] = {"message_id": message_id, "date": int(time.time()), "chat": {"id": chat_id}}
    result[field_name] = value
    if params.get("caption"):
        result["caption"] = params["caption"]
    return ok(result, answer_id=str(message_id))


async def _get_updates(bot: Bot, request: Request, params: dict[str, Any]) -> Answer:
    if bot.webhook_url:
        return error(409, WEBHOOK_CONFLICT)
    offset, limit, timeout = (_int(params.get(name), default) for name, default in GET_UPDATES_DEFAULTS)
    if offset > 0:
        bot.confirm(offset)
    bot.arrived.clear()
    if not bot.updates and timeout > 0:
        await _wait_for_updates(request, bot, timeout)
    return ok(bot.updates[: max(1, min(limit, 100))])


async def _wait_for_updates(request: Request, bot: Bot, timeout: float) -> None:
    """Hold the long poll until an update arrives, `timeout` passes or the client hangs up."""
    arrived = asyncio.ensure_future(bot.arrived.wait())
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({arrived, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        arrived.cancel()
        watcher.cancel()


def _set_webhook(bot: Bot, params: dict[str, Any]) -> Answer:
    secret = params.get("secret_token")
    if secret is not None and not SECRET_TOKEN.fullmatch(str(secret)):
        return error(400, "Bad Request: secret token contains unallowed characters")
    url = str(params.get("url") or "")
    if url and not url.startswith(("http://", "https://")):
        return error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
    bot.webhook_url, bot.webhook_secret = url, str(secret) if secret is not None else None
    return Answer(200, {"ok": True, "result": True, "description": "Webhook was set" if url else "Webhook was deleted"})


def _delete_webhook(bot: Bot, params: dict[str, Any]) -> Answer:
    bot.webhook_url, bot.webhook_secret = "", None
    if params.get("drop_pending_updates") in (True, "true", "True"):
        bot.updates.clear()
    return Answer(200, {"ok": True, "result": True, "description": "Webhook was deleted"})


def _get_file(sim: TelegramState, params: dict[str, Any]) -> Answer:
    file_id = str(params.get("file_id") or "")
    stored = sim.files.get(file_id)
    if stored is None:
        return error(400, "Bad Request: invalid file_id")
    if stored.file_size > MAX_DOWNLOAD_BYTES:
        return error(400, "Bad Request: file is too big")
    return ok(
        {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }
    )


def _profile_photos(sim: TelegramState, params: dict[str, Any]) -> Answer:
    user_id = _int(params.get("user_id"), 0)
    if user_id <= 0:
        return error(400, "Bad Request: user not found")
    photos = sim.profiles.get(user_id, [])
    limit = max(1, min(_int(params.get("limit"), 100), 100))
    sizes = [
        [
            {"file_id": f"{file_id}-small", "file_unique_id": f"s{file_id}", "width": 160, "height": 160},
            {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 640, "height": 640},
        ]
        for file_id in photos[:limit]
    ]
    return ok({"total_count": len(photos), "photos": sizes})


async def _fault_answer(request: Request, fault: Fault) -> Response:
    """An armed fault in the Bot API's error shape, unless the fault brings its own body."""
    if fault.body is not None:
        faulted = await _apply(request, fault)
        assert faulted is not None
        return faulted
    if fault.delay:
        await _hold(request, fault.delay)
    status = fault.status or 500
    descriptions = {429: f"Too Many Requests: retry after {fault.retry_after or 1:g}", 409: "Conflict"}
    parameters = {"retry_after": fault.retry_after} if fault.retry_after is not None else {}
    answer = error(status, descriptions.get(status, f"Simulated error {status}"), **parameters)
    return JSONResponse(answer.body, status_code=status)


def _push_request(sim: TelegramState, body: PushBody) -> tuple[str, dict[str, str], bytes]:
    """The URL, headers and exact bytes Telegram would send for this push."""
    bot = sim.bot(body.token) if body.token is not None else None
    if bot is not None:
        if not bot.webhook_url:
            raise ApiError(409, "no_webhook", "this bot has no webhook set (setWebhook)")
        url, secret = bot.webhook_url, bot.webhook_secret
    else:
        url, secret = f"{str(body.ingress_url).rstrip('/')}/webhooks/telegram/{body.channel_id}", None
    if body.secret_token is not None:
        secret = body.secret_token
    headers = {"Content-Type": "application/json"}
    if secret is not None and not body.omit_secret:
        headers[TELEGRAM_SECRET_HEADER] = secret
    return url, headers, _push_content(sim, bot, body)


def _push_content(sim: TelegramState, bot: Bot | None, body: PushBody) -> bytes:
    """The raw bytes asked for, or the update: numbered by the bot (or the push counter) when it has no id."""
    if body.raw is not None:
        return body.raw.encode()
    update = body.update
    if isinstance(update, dict) and bot is not None:
        update = bot.add(update)
    elif isinstance(update, dict) and "update_id" not in update:
        update = {"update_id": next(sim.push_ids), **update}
    return json.dumps(update).encode()


async def _params(request: Request, raw: bytes) -> tuple[dict[str, Any], list[ReceivedFile]]:
    """Bot API parameters: query string, then a JSON, urlencoded or multipart body (as Telegram accepts), and the
    files uploaded in a multipart body (their parameter reads `<upload name>`)."""
    params: dict[str, Any] = dict(request.query_params)
    uploads: list[ReceivedFile] = []
    content_type = request.headers.get("content-type", "")
    if "json" in content_type and raw:
        parsed = _json_or_none(raw)
        if isinstance(parsed, dict):
            params.update(parsed)
    elif "form" in content_type:
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    uploads.append(await read_upload(key, value))
                    params[key] = f"<upload {value.filename}>"
                else:
                    params[key] = value
    return params, uploads


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
