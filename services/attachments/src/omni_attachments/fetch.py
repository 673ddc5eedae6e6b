"""Fetching a file by URL without trusting it: http(s) only, no private hosts (omni_runtime.destinations), a size
cap, each redirect checked."""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import httpx

from omni_providers import FileLocation
from omni_providers.http import raise_for_delivery
from omni_runtime.destinations import check_destination
from omni_runtime.errors import PermanentError, RetryLater

MAX_REDIRECTS = 5
ERROR_SNIPPET_BYTES = 1024

Write = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    allow_private: bool


@dataclass(frozen=True)
class Download:
    """A 2xx answer whose body has not been read yet."""

    response: httpx.Response
    max_bytes: int
    what: str

    @property
    def content_type(self) -> str | None:
        value = self.response.headers.get("Content-Type")
        return str(value) if value else None

    async def copy_to(self, write: Write) -> int:
        """Stream the body into `write` and return its size; past `max_bytes` it stops and refuses."""
        size = 0
        with _network_errors(self.what):
            async for chunk in self.response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise PermanentError(f"attachment is larger than the limit of {self.max_bytes} bytes")
                await write(chunk)
        return size


@asynccontextmanager
async def open_download(
    http: httpx.AsyncClient, location: FileLocation, policy: FetchPolicy
) -> AsyncIterator[Download]:
    """GET the file, following up to MAX_REDIRECTS redirects; raises RetryLater or PermanentError for bad answers."""
    try:
        url = httpx.URL(location.url)
    except httpx.InvalidURL as exc:
        raise PermanentError(f"attachment URL is not valid: {exc}") from None
    await check_destination(url, policy.allow_private)
    request = http.build_request("GET", url, headers=dict(location.headers))
    for _ in range(MAX_REDIRECTS + 1):
        what = f"attachment download from {request.url.host}"
        with _network_errors(what):
            response = await http.send(request, stream=True)
        try:
            if response.next_request is None:
                await _check_answer(response, what, policy.max_bytes)
                yield Download(response, policy.max_bytes, what)
                return
            # httpx drops credentials when a redirect leaves the origin; the new host is checked like the first.
            request = response.next_request
            await check_destination(request.url, policy.allow_private)
        finally:
            await response.aclose()
    raise PermanentError(f"attachment URL redirected more than {MAX_REDIRECTS} times")


async def _check_answer(response: httpx.Response, what: str, max_bytes: int) -> None:
    if response.is_success:
        length = _content_length(response)
        if length is not None and length > max_bytes:
            raise PermanentError(f"attachment is {length} bytes, above the limit of {max_bytes} bytes")
        return
    with _network_errors(what):
        head = await _read_head(response)
    # The shared classification reads `.text`, which a streamed answer does not have: hand it what was read.
    answer = httpx.Response(response.status_code, headers=_retry_hint(response), content=head)
    if answer.status_code == 404:
        # Some messengers answer 404 for a moment after announcing a file; the retry schedule bounds the wait.
        raise RetryLater(f"{what} answered 404: {answer.text[:200]}")
    raise_for_delivery(answer, what)


async def _read_head(response: httpx.Response) -> bytes:
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= ERROR_SNIPPET_BYTES:
            break
    return head[:ERROR_SNIPPET_BYTES]


def _retry_hint(response: httpx.Response) -> dict[str, str]:
    value = response.headers.get("Retry-After")
    return {"Retry-After": value} if value else {}


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


@contextmanager
def _network_errors(what: str) -> Iterator[None]:
    """Network trouble is transient: the consumer's retry schedule decides how long to keep trying."""
    try:
        yield
    except httpx.UnsupportedProtocol as exc:
        raise PermanentError(f"{what}: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise RetryLater(f"{what} timed out") from exc
    except httpx.TransportError as exc:
        raise RetryLater(f"{what} failed: {type(exc).__name__}") from exc
    except httpx.DecodingError as exc:
        raise PermanentError(f"{what}: the body could not be decoded") from exc
