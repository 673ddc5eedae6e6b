"""Fetching a file by URL without trusting it: http(s) only, no private hosts, a size cap, each redirect checked.

The destination check resolves the host before connecting; a name that resolves differently a moment
later (DNS rebinding) is not caught here.
"""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

import httpx

from omni_providers import FileLocation
from omni_providers.http import raise_for_delivery
from omni_runtime.errors import PermanentError, RetryLater

MAX_REDIRECTS = 5
ERROR_SNIPPET_BYTES = 1024

Address = IPv4Address | IPv6Address
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


async def check_destination(url: httpx.URL, allow_private: bool) -> None:
    """Refuse schemes other than http(s) and, unless allowed, hosts with any private or reserved address."""
    if url.scheme not in ("http", "https"):
        raise PermanentError(f"refused to fetch a {url.scheme or 'relative'} URL: only http and https are allowed")
    if not url.host:
        raise PermanentError("refused to fetch a URL without a host")
    if allow_private:
        return
    for address in await _addresses(url.host, url.port or (443 if url.scheme == "https" else 80)):
        kind = non_public_kind(address)
        if kind is not None:
            raise PermanentError(
                f"refused to fetch from {url.host}: {address} is a {kind} address, "
                "and private addresses are refused (ALLOW_PRIVATE_FETCH is off)"
            )


def non_public_kind(address: Address) -> str | None:
    """Why `address` is not on the public internet (loopback, private, ...), or None when it is."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    kinds = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
    )
    kind = next((name for name, hit in kinds if hit), None)
    return kind or (None if address.is_global else "non-public")


async def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RetryLater(f"could not resolve {host}: {exc.strerror}") from exc
    return [ip_address(str(info[4][0])) for info in infos]


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
