"""Telegram `Update` -> UnifiedMessage, for webhook bodies and getUpdates items alike.

Only `message` updates carry a customer message; every other kind (edited_message, callback_query,
channel_post, ...) is acknowledged and dropped, as are messages with nothing we can show (polls,
contacts, service messages).
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError

from omni_contracts import Attachment, Location, MessageType, UnifiedMessage
from omni_providers.base import Channel, WebhookRejected
from omni_runtime.web import describe


def _encodable(value: str) -> str:
    # JSON may carry lone surrogates ("\ud800"), which no later step could serialise: refuse them here.
    value.encode("utf-8")
    return value


Text = Annotated[str, AfterValidator(_encodable)]
# Telegram ids fit in 52 bits; chat ids of groups are negative.
TelegramId = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]
# Unix seconds that datetime can represent.
UnixTime = Annotated[int, Strict(), Field(ge=0, le=253_402_300_799)]
Degrees = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Model):
    id: TelegramId
    first_name: Text = ""
    last_name: Text | None = None
    username: Text | None = None


class Chat(_Model):
    id: TelegramId
    type: Text = "private"
    title: Text | None = None
    first_name: Text | None = None
    last_name: Text | None = None


class File(_Model):
    """Any downloadable object: PhotoSize, Document, Audio, Video, Voice, VideoNote, Sticker."""

    file_id: Annotated[Text, Field(min_length=1, max_length=1024)]
    file_size: Annotated[int, Strict(), Field(ge=0)] | None = None
    mime_type: Text | None = None
    file_name: Text | None = None
    width: Annotated[int, Strict(), Field(ge=0)] = 0
    height: Annotated[int, Strict(), Field(ge=0)] = 0
    is_animated: bool = False
    is_video: bool = False


class GeoPoint(_Model):
    latitude: Annotated[Degrees, Field(ge=-90, le=90)]
    longitude: Annotated[Degrees, Field(ge=-180, le=180)]


class Message(_Model):
    message_id: Annotated[int, Strict(), Field(ge=0, le=2**63 - 1)]
    sender: User | None = Field(default=None, alias="from")
    chat: Chat
    date: UnixTime
    text: Text | None = None
    caption: Text | None = None
    photo: list[File] | None = None
    video: File | None = None
    video_note: File | None = None
    audio: File | None = None
    voice: File | None = None
    document: File | None = None
    sticker: File | None = None
    location: GeoPoint | None = None


class Update(_Model):
    update_id: TelegramId
    message: Message | None = None


def parse_update(payload: Any) -> Update:
    """The update, or 400 for anything that is not a well-formed one."""
    try:
        return Update.model_validate(payload)
    except ValidationError as exc:
        raise WebhookRejected(400, "invalid_update", describe(exc)) from None


def update_id_of(payload: Any) -> int | None:
    """The update_id of a getUpdates item even when the rest of it is malformed (the offset must move past it)."""
    value = payload.get("update_id") if isinstance(payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def to_messages(provider: str, channel: Channel, payload: Any) -> list[UnifiedMessage]:
    """The customer messages of one Update: none or one. Raises WebhookRejected(400) when malformed."""
    message = parse_update(payload).message
    if message is None:
        return []
    content = _content(message)
    if content is None:
        return []
    kind, attachment, location = content
    try:
        unified = UnifiedMessage(
            provider=provider,
            channel_id=channel.id,
            # (chat.id, message_id) rather than update_id: it names the message itself, so the same message
            # keeps its key whether it came by webhook or by getUpdates, and across a webhook reset, while
            # update_id is only sequential per bot and restarts at random after a week without updates.
            provider_message_id=f"{message.chat.id}:{message.message_id}",
            # Replies go to chat.id (in a private chat it equals from.id): the contact is the chat.
            sender=str(message.chat.id),
            sender_name=_sender_name(message),
            recipient=channel.source,
            sent_at=datetime.fromtimestamp(message.date, UTC),
            type=kind,
            text=message.text if message.text is not None else message.caption,
            attachments=(attachment,) if attachment else (),
            location=location,
        )
    except ValidationError as exc:
        raise WebhookRejected(400, "invalid_update", describe(exc)) from None
    return [unified]


# Message field, our type, the content type when Telegram gives none; a voice note is audio.
MEDIA: tuple[tuple[str, MessageType, str | None], ...] = (
    ("video", "video", "video/mp4"),
    ("video_note", "video", "video/mp4"),
    ("audio", "audio", None),
    ("voice", "audio", "audio/ogg"),
    ("document", "file", None),
)


def _content(message: Message) -> tuple[MessageType, Attachment | None, Location | None] | None:
    if message.photo:
        largest = max(reversed(message.photo), key=lambda size: size.width * size.height)
        return "image", _attachment(largest, "image/jpeg"), None
    for field, kind, default_type in MEDIA:
        file: File | None = getattr(message, field)
        if file is not None:
            return kind, _attachment(file, default_type), None
    if message.sticker is not None:
        return "sticker", _attachment(message.sticker, _sticker_type(message.sticker)), None
    if message.location is not None:
        return "location", None, Location(latitude=message.location.latitude, longitude=message.location.longitude)
    if message.text:
        return "text", None, None
    return None


def _attachment(file: File, default_type: str | None) -> Attachment:
    return Attachment(
        provider_file_id=file.file_id,
        content_type=file.mime_type or default_type,
        file_name=file.file_name,
        size=file.file_size,
    )


def _sticker_type(sticker: File) -> str:
    if sticker.is_animated:
        return "application/x-tgsticker"
    return "video/webm" if sticker.is_video else "image/webp"


def _sender_name(message: Message) -> str | None:
    """A private chat is named after the person; a group (the contact replies go to) after its title."""
    person = message.sender
    if message.chat.type != "private" and message.chat.title:
        return message.chat.title
    first, last = (person.first_name, person.last_name) if person else (message.chat.first_name, message.chat.last_name)
    name = " ".join(part for part in (first, last) if part).strip()
    return name or None
