"""Calling Meta's Graph API: one request helper that classifies answers by Graph error code.

Graph reports rate limits and passing trouble with HTTP 400/403 and an error code, so the status
alone cannot tell retry from refusal. Access tokens travel in query strings and headers: no URL,
and no token, ever reaches an exception message.
"""

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from omni_providers.http import retry_after_seconds
from omni_runtime.errors import PermanentError, RetryLater

# Codes that mean "not now": throttling of the app, user, page or number, and Meta's own passing trouble.
TRANSIENT_CODES = frozenset(
    {
        1,  # API unknown
        2,  # API service: temporarily unavailable
        4,  # application request limit
        17,  # user request limit
        32,  # page request limit
        341,  # application limit reached
        613,  # calls within one hour exceeded
        80007,  # WhatsApp Business Account rate limit
        130429,  # WhatsApp throughput limit (80 msg/s per number)
        131000,  # WhatsApp: something went wrong
        131016,  # WhatsApp service unavailable
        131056,  # WhatsApp pair rate limit (one recipient too often)
        133004,  # WhatsApp server temporarily unavailable
    }
)
# Codes that mean the 24-hour customer service window has closed: said plainly, as the dispatcher does.
WINDOW_CLOSED = frozenset({(10, 2018278), (131047, None)})
# Transient codes that are rate limits: tried again after a wait, never at once.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80007, 130429, 131056})
MESSAGE_LIMIT = 300


def node(graph: str, *path: str) -> str:
    """A Graph URL: each id quoted whole, so an id from a webhook can never reach another endpoint."""
    return "/".join([graph, *(quote(part, safe="") for part in path)])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def graph_call(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    what: str,
    token: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
) -> dict[str, Any]:
    """The answer's JSON object; raises RetryLater or PermanentError, with `token` scrubbed from any text."""
    try:
        response = await http.request(method, url, params=params, headers=headers, json=json_body)
    except httpx.TimeoutException:
        raise RetryLater(f"{what} timed out") from None
    except httpx.TransportError as exc:
        raise RetryLater(f"{what} unreachable: {type(exc).__name__}") from None
    body = _json_object(response)
    if 200 <= response.status_code < 300 and body is not None and "error" not in body:
        return body
    raise classify(response.status_code, body, what, token, retry_after_seconds(response))


def classify(
    status: int, body: Mapping[str, Any] | None, what: str, token: str, retry_after: float | None = None
) -> RetryLater | PermanentError:
    """The exception for a Graph answer that is not a success."""
    error = body.get("error") if body else None
    if not isinstance(error, Mapping):
        reason = f"{what} answered {status} without a Graph error"
        if status in (408, 425, 429) or status >= 500 or 200 <= status < 300:
            return RetryLater(reason, retry_after, throttled=status == 429)
        return PermanentError(reason)
    return _graph_error(status, error, what, token, retry_after)


def _graph_error(
    status: int, error: Mapping[str, Any], what: str, token: str, retry_after: float | None
) -> RetryLater | PermanentError:
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    reason = _reason(error, code, subcode, what, token)
    if (code, subcode) in WINDOW_CLOSED or (code, None) in WINDOW_CLOSED:
        return PermanentError(f"{reason}; outside the 24-hour reply window")
    if code in TRANSIENT_CODES or error.get("is_transient") is True or status in (408, 429) or status >= 500:
        return RetryLater(reason, retry_after, throttled=status == 429 or code in RATE_LIMIT_CODES)
    return PermanentError(reason)


def _reason(error: Mapping[str, Any], code: int | None, subcode: int | None, what: str, token: str) -> str:
    message = _scrub(str(error.get("message") or error.get("error_user_msg") or "no message"), token)
    return f"{what} refused (Graph error {code}{f'/{subcode}' if subcode else ''}): {message}"


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _scrub(text: str, token: str) -> str:
    return (text.replace(token, "[token]") if token else text)[:MESSAGE_LIMIT]
