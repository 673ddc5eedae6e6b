"""The UnifiedMessage: what every messenger's payload becomes once ingress has converted it."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

MessageType = Literal["text", "image", "video", "audio", "file", "location", "sticker"]
MessageStatus = Literal["received", "queued", "sent", "delivered", "read", "failed"]
AttachmentStatus = Literal["pending", "stored", "failed"]


class Contract(BaseModel):
    """Base of every contract: frozen, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION


class Attachment(BaseModel):
    """A file as the messenger describes it: a URL to fetch or a provider file id to resolve."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str | None = None
    provider_file_id: str | None = None
    content_type: str | None = None
    file_name: str | None = None
    size: int | None = None


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
