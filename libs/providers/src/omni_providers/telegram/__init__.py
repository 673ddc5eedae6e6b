"""Telegram Bot API channels: webhook or long polling in, the send methods out, files by getFile."""

from omni_providers.telegram.botapi import MAX_DOWNLOAD_BYTES, PollingConflict
from omni_providers.telegram.provider import TelegramProvider, generate_secret_token, send_calls
from omni_providers.telegram.updates import to_messages, update_id_of

__all__ = [
    "MAX_DOWNLOAD_BYTES",
    "PollingConflict",
    "TelegramProvider",
    "generate_secret_token",
    "send_calls",
    "to_messages",
    "update_id_of",
]
