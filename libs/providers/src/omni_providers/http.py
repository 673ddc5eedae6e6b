"""Turning a messenger API's answer into success, retry-later or a final failure."""

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from omni_runtime.errors import PermanentError, RetryLater


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def raise_for_delivery(response: httpx.Response, what: str) -> None:
    """2xx returns; 429, 408 and 5xx are worth retrying; any other status is final."""
    status = response.status_code
    if 200 <= status < 300:
        return
    snippet = response.text[:200]
    if status in (408, 425, 429) or status >= 500:
        raise RetryLater(f"{what} answered {status}: {snippet}", retry_after_seconds(response), throttled=status == 429)
    raise PermanentError(f"{what} refused with {status}: {snippet}")


async def post(http: httpx.AsyncClient, url: str, what: str, **kwargs: object) -> httpx.Response:
    """POST, classifying network trouble as transient."""
    response = await call(http, "POST", url, what, **kwargs)
    raise_for_delivery(response, what)
    return response


async def call(http: httpx.AsyncClient, method: str, url: str, what: str, **kwargs: object) -> httpx.Response:
    """Any request, network trouble raised as RetryLater; the answer is returned for the caller to classify.

    For APIs whose error bodies decide more than the status does (Twilio's error codes, say).
    """
    try:
        return await http.request(method, url, **kwargs)  # type: ignore[arg-type]
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # no retry makes such a URL work
        raise PermanentError(f"{what} is not a URL this service can call: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise RetryLater(f"{what} timed out") from exc
    except httpx.TransportError as exc:
        raise RetryLater(f"{what} unreachable: {type(exc).__name__}") from exc
