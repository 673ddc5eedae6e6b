"""The UnifiedMessage: what every messenger's payload becomes once ingress has converted it."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# 2: attachments by our `file_id`, templates and message tags on replies, outbound webhook deliveries (all additive:
# version 1 messages still parse, and version 1 consumers ignore the new fields).
SCHEMA_VERSION = 2

MessageType = Literal["text", "image", "video", "audio", "file", "location", "sticker"]
MessageStatus = Literal["received", "queued", "sent", "delivered", "read", "failed"]
AttachmentStatus = Literal["pending", "stored", "failed"]


class Contract(BaseModel):
    """Base of every contract: frozen, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION


class Attachment(BaseModel):
    """A file: as the messenger describes it (a URL to fetch or a provider file id to resolve), or one of ours.

    `file_id` is our id of a file in GridFS (an operator's upload); on a reply the dispatcher sends that file
    through the channel's provider, by upload or by a signed, expiring URL it fills in as `url`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    file_id: str | None = Field(default=None, min_length=1, max_length=64)
    url: str | None = None
    provider_file_id: str | None = None
    content_type: str | None = None
    file_name: str | None = None
    size: int | None = None


class Template(BaseModel):
    """A messenger-approved message template, what WhatsApp takes outside its 24-hour window.

    `name`: the template's name (WhatsApp Cloud API) or its Content SID (Twilio, `HX...`); `language`: its
    language code (`en_US`; the Cloud API needs it); `parameters`: the body's variables in order.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=512)
    language: str | None = Field(default=None, min_length=1, max_length=16)
    parameters: tuple[str, ...] = Field(default=(), max_length=100)


class Location(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    latitude: float
    longitude: float


class UnifiedMessage(Contract):
    """One customer message, whatever messenger it came from (the reference's UnifiedMessage)."""

    provider: str
    channel_id: str
    provider_message_id: str = Field(min_length=1, max_length=512)
    sender: str = Field(min_length=1, max_length=512)
    sender_name: str | None = None
    recipient: str
    sent_at: datetime
    type: MessageType = "text"
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    location: Location | None = None
