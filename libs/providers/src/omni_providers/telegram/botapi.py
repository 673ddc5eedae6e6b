"""Calling the Telegram Bot API: `{api}/bot<token>/<method>`, its `{"ok", "result"}` answers and its errors.

The bot token sits inside every URL, so no URL and no httpx exception text ever goes into an error
message here: errors name the method and Telegram's own description only.
"""

import re
from collections.abc import Mapping
from typing import Any

import httpx

from omni_providers.base import Channel
from omni_providers.http import retry_after_seconds
from omni_runtime.errors import PermanentError, RetryLater

# Bots download files of at most 20 MB through getFile (Bot API, "getFile").
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
# Bots upload photos of at most 10 MB and other files of at most 50 MB (Bot API, "Sending files").
MAX_PHOTO_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# `<bot id>:<secret>`; anything else could bend the path of the URL it is put into.
TOKEN_PATTERN = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{1,200}$")
DESCRIPTION_CHARS = 300


class PollingConflict(PermanentError):
    """getUpdates answered 409: a webhook is set for the bot, or another program is polling it."""


def bot_token(channel: Channel) -> str:
    token = channel.settings.get("bot_token")
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        raise PermanentError(f"channel {channel.id} has no valid bot_token (expected <bot id>:<secret>)")
    return token


def bot_id(token: str) -> str:
    """The bot's numeric id, which is also the channel's `source` (docs/api.md)."""
    return token.partition(":")[0]


class BotApi:
    def __init__(self, base_url: str) -> None:
        self._base = base_url.rstrip("/")

    def file_url(self, token: str, file_path: str) -> str:
        return f"{self._base}/file/bot{token}/{file_path.lstrip('/')}"

    async def call(
        self,
        http: httpx.AsyncClient,
        channel: Channel,
        method: str,
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> Any:
        """POST the method with a JSON body; its `result`, or RetryLater / PermanentError."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return await self._post(http, channel, method, json=dict(params), **extra)

    async def upload(
        self,
        http: httpx.AsyncClient,
        channel: Channel,
        method: str,
        params: Mapping[str, Any],
        field: str,
        file: tuple[str, bytes, str],
    ) -> Any:
        """POST the method as multipart/form-data with `file` (name, bytes, type) in `field`; its `result`."""
        data = {name: str(value) for name, value in params.items()}
        return await self._post(http, channel, method, data=data, files={field: file})

    async def _post(self, http: httpx.AsyncClient, channel: Channel, method: str, **kwargs: Any) -> Any:
        url = f"{self._base}/bot{bot_token(channel)}/{method}"
        try:
            response = await http.post(url, **kwargs)
        except httpx.TimeoutException:
            raise RetryLater(f"Telegram {method} timed out") from None
        except httpx.HTTPError as exc:
            raise RetryLater(f"Telegram {method} unreachable: {type(exc).__name__}") from None
        return read_answer(response, method)


def read_answer(response: httpx.Response, method: str) -> Any:
    """Classify a Bot API answer: 429 waits `retry_after`, 5xx retries, 409 is PollingConflict, other 4xx are final."""
    data = _json(response)
    if 200 <= response.status_code < 300 and data.get("ok") is True:
        return data.get("result")
    raise _failure(response, method, data)


def _failure(response: httpx.Response, method: str, data: dict[str, Any]) -> Exception:
    status = response.status_code
    code = data.get("error_code") if isinstance(data.get("error_code"), int) else status
    description = _description(data, status)
    parameters = _parameters(data)
    if 429 in (status, code):
        hint = _seconds(parameters.get("retry_after"))
        wait = hint if hint is not None else retry_after_seconds(response)
        return RetryLater(f"Telegram {method} rate limited: {description}", wait, throttled=True)
    if status >= 500 or status in (408, 425) or 200 <= status < 300:
        return RetryLater(f"Telegram {method} answered {status}: {description}", retry_after_seconds(response))
    if code == 409:
        return PollingConflict(f"Telegram {method} refused (409): {description}")
    moved = parameters.get("migrate_to_chat_id")
    if moved is not None:
        description += f"; the group is now chat {moved}"
    return PermanentError(f"Telegram {method} refused ({code}): {description}")


def _description(data: dict[str, Any], status: int) -> str:
    return str(data.get("description") or f"HTTP {status} without a Bot API answer")[:DESCRIPTION_CHARS]


def _parameters(data: dict[str, Any]) -> dict[str, Any]:
    given = data.get("parameters")
    return given if isinstance(given, dict) else {}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
