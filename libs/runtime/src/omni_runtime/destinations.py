"""Where a service may send a request it was told to make: http(s) only, and no private hosts unless allowed.

Attachment downloads and outbound webhooks both call URLs that someone else chose (a customer's messenger, an
admin); ALLOW_PRIVATE_FETCH opens loopback and private networks (tests). The check resolves the host before
connecting; a name that resolves differently a moment later (DNS rebinding) is not caught here.
"""

import asyncio
import socket
from ipaddress import IPv4Address, IPv6Address, ip_address

import httpx

from omni_runtime.errors import PermanentError, RetryLater

Address = IPv4Address | IPv6Address


async def check_destination(
    url: httpx.URL, allow_private: bool, *, verb: str = "fetch", host_verb: str = "fetch from"
) -> None:
    """Refuse schemes other than http(s) and, unless allowed, hosts with any private or reserved address.

    `verb` and `host_verb` word the refusal for the caller ("fetch a file URL", "fetch from 10.0.0.1").
    """
    if url.scheme not in ("http", "https"):
        raise PermanentError(f"refused to {verb} a {url.scheme or 'relative'} URL: only http and https are allowed")
    if not url.host:
        raise PermanentError(f"refused to {verb} a URL without a host")
    if allow_private:
        return
    for address in await _addresses(url.host, url.port or (443 if url.scheme == "https" else 80)):
        kind = non_public_kind(address)
        if kind is not None:
            raise PermanentError(
                f"refused to {host_verb} {url.host}: {address} is a {kind} address, "
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
