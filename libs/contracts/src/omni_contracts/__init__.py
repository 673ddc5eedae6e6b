"""Messages and events exchanged on the broker: data only, one frozen pydantic class per shape."""

from omni_contracts.events import (
    AttachmentRequested,
    AttachmentStored,
    ChatNotification,
    Event,
    MessageFailed,
    MessageOutgoing,
    MessageReceived,
    MessageSent,
    MessageStatusChanged,
    ProfileRequested,
    ProfileResolved,
    RouterUpdate,
)
from omni_contracts.messages import (
    SCHEMA_VERSION,
    Attachment,
    AttachmentStatus,
    Contract,
    Location,
    MessageStatus,
    MessageType,
    UnifiedMessage,
)

__all__ = [
    "SCHEMA_VERSION",
    "Attachment",
    "AttachmentRequested",
    "AttachmentStatus",
    "AttachmentStored",
    "ChatNotification",
    "Contract",
    "Event",
    "Location",
    "MessageFailed",
    "MessageOutgoing",
    "MessageReceived",
    "MessageSent",
    "MessageStatus",
    "MessageStatusChanged",
    "MessageType",
    "ProfileRequested",
    "ProfileResolved",
    "RouterUpdate",
    "UnifiedMessage",
]
