"""The Telegram adapter: secret-token webhooks, the Bot API's send methods, setWebhook, files and photos."""

import mimetypes
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from omni_contracts import Attachment, MessageOutgoing, UnifiedMessage
from omni_providers.base import (
    Channel,
    ChannelLookup,
    DeliveryPolicy,
    Inbound,
    InboundRequest,
    OutgoingFile,
    Registration,
    SendResult,
    WebhookRejected,
)
from omni_providers.payloads import parse_json
from omni_providers.signatures import TELEGRAM_SECRET_HEADER, verify_secret_token
from omni_providers.telegram.botapi import (
    MAX_DOWNLOAD_BYTES,
    MAX_PHOTO_UPLOAD_BYTES,
    MAX_UPLOAD_BYTES,
    BotApi,
    bot_id,
    bot_token,
)
from omni_providers.telegram.updates import to_messages
from omni_runtime.errors import PermanentError
from omni_runtime.settings import Settings

# setWebhook's secret_token: 1-256 characters of A-Za-z0-9_-.
SECRET_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# Captions are shorter than messages (1024 against 4096); a longer text goes first as its own message.
CAPTION_LIMIT = 1024
# Only customer messages are handled; asking for nothing else spares Telegram and us the rest.
ALLOWED_UPDATES = ["message"]
# Send method and its file field, by the attachment's kind of content.
MEDIA_METHODS = {"image": ("sendPhoto", "photo"), "video": ("sendVideo", "video"), "audio": ("sendAudio", "audio")}
# Uploads Telegram shows as a photo (re-encoded, within MAX_PHOTO_UPLOAD_BYTES); any other file goes as a document.
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})

Params = dict[str, Any]


@dataclass(frozen=True)
class Profile:
    name: str | None
    photo_url: str | None


@dataclass(frozen=True)
class FileLocation:
    url: str = field(repr=False)  # carries the bot token
    headers: Mapping[str, str] = field(default_factory=dict)


def generate_secret_token() -> str:
    """64 characters of A-Za-z0-9_- (URL-safe base64 of 48 random bytes)."""
    return secrets.token_urlsafe(48)


class TelegramProvider:
    """Channels of provider `telegram`: settings `bot_token`, `secret_token`, `mode` (`webhook` or `polling`)."""

    kind: Literal["telegram"] = "telegram"
    # About one message a second to one chat and thirty a second across chats (Bot API FAQ).
    delivery_policy = DeliveryPolicy(per_chat_interval=1.0, per_channel_rate=30.0)

    def __init__(self, name: str = "telegram", settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.name = name
        self.api = BotApi(settings.telegram_api_url)
        self._public_base_url = settings.public_base_url.rstrip("/")

    # Receiving

    async def receive(self, request: InboundRequest, channels: ChannelLookup) -> Inbound:
        channel = await channels.by_id(self.name, request.channel_id) if request.channel_id else None
        if channel is None:
            raise WebhookRejected(404, "unknown_channel", f"no active {self.name} channel at this webhook path")
        secret = channel.settings.get("secret_token")
        if not verify_secret_token(str(secret or ""), request.header(TELEGRAM_SECRET_HEADER)):
            raise WebhookRejected(401, "bad_signature", f"{TELEGRAM_SECRET_HEADER} missing or wrong")
        return Inbound(messages=self.convert(channel, parse_json(request.body)))

    def convert(self, channel: Channel, update: Any) -> list[UnifiedMessage]:
        """One Update (a webhook body or a getUpdates item) as messages; WebhookRejected(400) when malformed."""
        return to_messages(self.name, channel, update)

    async def get_updates(self, http: httpx.AsyncClient, channel: Channel, offset: int, timeout: int) -> list[Any]:
        """Long-poll for updates from `offset` (which confirms every earlier one); PollingConflict on 409."""
        params = {"offset": offset, "limit": 100, "timeout": timeout, "allowed_updates": ALLOWED_UPDATES}
        # The HTTP wait must outlast Telegram's own: it answers after `timeout` seconds when nothing came.
        result = await self.api.call(http, channel, "getUpdates", params, timeout=timeout + 10.0)
        if not isinstance(result, list):
            raise PermanentError("Telegram getUpdates answered without a list of updates")
        return result

    # Sending

    async def send(self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing) -> SendResult:
        return await self.send_files(http, channel, message, {})

    async def send_files(
        self, http: httpx.AsyncClient, channel: Channel, message: MessageOutgoing, files: Mapping[str, OutgoingFile]
    ) -> SendResult:
        """Our files (by `file_id`) go up as multipart uploads of their bytes; everything else by URL or file_id."""
        chat_id = _chat_id(message.recipient)
        result: Any = None
        for method, params in send_calls(message, files):
            params = {"chat_id": chat_id, **params}
            upload = next(((k, v) for k, v in params.items() if isinstance(v, OutgoingFile)), None)
            if upload is None:
                result = await self.api.call(http, channel, method, params)
                continue
            field_name, file = upload
            del params[field_name]
            content = await file.read()
            result = await self.api.upload(
                http, channel, method, params, field_name, (file.file_name, content, file.content_type)
            )
        sent_id = result.get("message_id") if isinstance(result, dict) else None
        return SendResult(provider_message_id=f"{chat_id}:{sent_id}" if sent_id is not None else None)

    # Registration

    async def register(self, http: httpx.AsyncClient, channel: Channel) -> Registration:
        """Webhook channels: setWebhook with our URL and the channel's secret (one is generated when absent).
        Polling channels: deleteWebhook, without which getUpdates answers 409."""
        me = await self.api.call(http, channel, "getMe", {})
        bot = str(me.get("id")) if isinstance(me, dict) else bot_id(bot_token(channel))
        if bot != channel.source:
            return Registration(ok=False, detail=f"the bot token belongs to bot {bot}, not to this channel's source")
        if channel.settings.get("mode") == "polling":
            await self.api.call(http, channel, "deleteWebhook", {"drop_pending_updates": False})
            return Registration(ok=True, detail="webhook deleted: updates are fetched by long polling")
        current = channel.settings.get("secret_token")
        if current and not (isinstance(current, str) and SECRET_TOKEN_PATTERN.fullmatch(current)):
            return Registration(ok=False, detail="secret_token must be 1-256 characters of A-Za-z0-9_-")
        secret = current or generate_secret_token()
        url = f"{self._public_base_url}/webhooks/{self.name}/{channel.id}"
        params = {"url": url, "secret_token": secret, "allowed_updates": ALLOWED_UPDATES}
        await self.api.call(http, channel, "setWebhook", params)
        return Registration(
            ok=True,
            detail=f"webhook set to {url}",
            settings_update={} if current else {"secret_token": secret},
        )

    # Profiles (names come with every message; Telegram adds the photo)

    async def fetch_profile(self, http: httpx.AsyncClient, channel: Channel, external_id: str) -> Profile | None:
        """The sender's latest profile photo, as a token-free `telegram-file:<file_id>` reference.

        The download URL of a Telegram file carries the bot token, so it is never stored on a contact;
        the reference names the file for whoever holds the token (getFile, then the file URL).
        """
        if not external_id.isdigit():
            return None  # a group (negative id) has no user profile
        photos = await self.api.call(http, channel, "getUserProfilePhotos", {"user_id": int(external_id), "limit": 1})
        file_id = _latest_photo(photos)
        return Profile(name=None, photo_url=f"telegram-file:{file_id}") if file_id else None

    # Attachments

    async def locate_attachment(
        self, http: httpx.AsyncClient, channel: Channel, attachment: Attachment
    ) -> FileLocation:
        """file_id -> getFile -> `{api}/file/bot<token>/<file_path>`; bots may download 20 MB at most."""
        if not attachment.provider_file_id:
            if attachment.url:
                return FileLocation(attachment.url)
            raise PermanentError("the attachment has neither a Telegram file_id nor a URL")
        _check_download_size(attachment.size)
        try:
            file = await self.api.call(http, channel, "getFile", {"file_id": attachment.provider_file_id})
        except PermanentError as exc:
            if "too big" in str(exc):
                _check_download_size(attachment.size, known_too_big=True)
            raise
        file = file if isinstance(file, dict) else {}
        size = file.get("file_size")
        _check_download_size(size if isinstance(size, int) else None)
        path = file.get("file_path")
        if not isinstance(path, str) or not path:
            raise PermanentError("Telegram getFile gave no file_path: the file cannot be downloaded")
        return FileLocation(self.api.file_url(bot_token(channel), path))


def send_calls(message: MessageOutgoing, files: Mapping[str, OutgoingFile] | None = None) -> list[tuple[str, Params]]:
    """The Bot API calls one reply takes: sendMessage for text, a send<Media> per attachment.

    An attachment that is one of our `files` is uploaded (its OutgoingFile stands in the file field): sendPhoto
    for a JPEG, PNG or WebP within the photo limit, sendDocument for anything else. Other attachments go by URL
    or Telegram file_id. The text rides as the first attachment's caption when it fits one.
    """
    text = _sendable_text(message)
    if not message.attachments:
        return [("sendMessage", {"text": text})]
    caption = text if len(text) <= CAPTION_LIMIT else ""
    calls: list[tuple[str, Params]] = [("sendMessage", {"text": text})] if text and not caption else []
    uploads = files or {}
    calls += [_attachment_call(a, uploads.get(a.file_id or "")) for a in message.attachments]
    if caption:
        calls[0][1]["caption"] = caption
    return calls


def _sendable_text(message: MessageOutgoing) -> str:
    """The reply's text, refusing what Telegram cannot send: a template, or nothing at all."""
    if message.template is not None:
        raise PermanentError("Telegram does not send templates")
    text = message.text or ""
    if not message.attachments and not text.strip():
        raise PermanentError("a Telegram message needs text or an attachment")
    return text


def _attachment_call(attachment: Attachment, upload: OutgoingFile | None) -> tuple[str, Params]:
    """One attachment's send<Media> call: an upload of our file, or a URL or Telegram file_id."""
    if upload is not None:
        method, field_name = _upload_method(upload)
        return method, {field_name: upload}
    method, field_name = _media_method(attachment)
    return method, {field_name: _file_reference(attachment)}


def _upload_method(file: OutgoingFile) -> tuple[str, str]:
    if file.size > MAX_UPLOAD_BYTES:
        raise PermanentError(
            f"Telegram bots upload files of at most 50 MB ({MAX_UPLOAD_BYTES} bytes); {file.file_name} is {file.size}"
        )
    photo = file.content_type.split(";")[0].strip().lower() in PHOTO_TYPES and file.size <= MAX_PHOTO_UPLOAD_BYTES
    return ("sendPhoto", "photo") if photo else ("sendDocument", "document")


def _media_method(attachment: Attachment) -> tuple[str, str]:
    content_type = attachment.content_type or mimetypes.guess_type(attachment.file_name or attachment.url or "")[0]
    kind = (content_type or "").split("/")[0].lower()
    return MEDIA_METHODS.get(kind, ("sendDocument", "document"))


def _file_reference(attachment: Attachment) -> str:
    reference = attachment.url or attachment.provider_file_id
    if not reference:
        raise PermanentError("an attachment for Telegram needs a URL or a Telegram file_id")
    return reference


def _latest_photo(photos: Any) -> str | None:
    """The file_id of the largest size of the newest photo in a UserProfilePhotos."""
    newest = photos.get("photos", [None])[0] if isinstance(photos, dict) and photos.get("photos") else None
    largest = newest[-1] if isinstance(newest, list) and newest else None
    file_id = largest.get("file_id") if isinstance(largest, dict) else None
    return file_id if isinstance(file_id, str) and file_id else None


def _chat_id(recipient: str) -> int | str:
    """Chat ids are integers (negative for groups); `@channelusername` is the other form Telegram takes."""
    try:
        return int(recipient)
    except ValueError:
        return recipient


def _check_download_size(size: int | None, known_too_big: bool = False) -> None:
    if known_too_big or (size is not None and size > MAX_DOWNLOAD_BYTES):
        told = f"this file is {size} bytes" if size is not None else "Telegram says this file is too big"
        raise PermanentError(f"Telegram bots can download files of at most 20 MB ({MAX_DOWNLOAD_BYTES} bytes); {told}")
