"""One signature helper per scheme; every comparison is constant-time."""

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit, urlunsplit

OMNI_SIGNATURE_HEADER = "X-Omni-Signature"


def hmac_sha256_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: the scheme of X-Omni-Signature (third-party) and Meta's X-Hub-Signature-256."""
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()  # one-shot: OpenSSL's, no HMAC object


def verify_hmac_sha256(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not secret:
        return False
    return hmac.compare_digest(hmac_sha256_signature(secret, body).encode(), header.strip().encode())


TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
_DEFAULT_PORTS = {"https": 443, "http": 80}


def twilio_signature(auth_token: str, url: str, form: Iterable[tuple[str, str]] = ()) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each distinct field name, sorted,
    with each of its distinct values, sorted (JSON bodies sign the URL alone)."""
    values: dict[str, set[str]] = {}
    for name, value in form:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def verify_twilio_signature(
    auth_token: str, url: str, header: str | None, form: Iterable[tuple[str, str]] = (), body: bytes | None = None
) -> bool:
    """Check a form webhook (`form`), or a JSON one (`body`: the URL's `bodySHA256` must be the body's hex SHA-256).

    The URL is tried as given and with the scheme's default port added or removed, as Twilio's SDKs do.
    """
    if not header or not auth_token:
        return False
    if body is not None:
        claimed = parse_qs(urlsplit(url).query).get("bodySHA256", [""])[0]
        if not hmac.compare_digest(claimed.lower().encode(), hashlib.sha256(body).hexdigest().encode()):
            return False
        form = ()
    fields = list(form)
    expected = header.strip().encode()
    matches = [
        hmac.compare_digest(twilio_signature(auth_token, u, fields).encode(), expected) for u in _port_variants(url)
    ]
    return any(matches)


def _port_variants(url: str) -> list[str]:
    """The URL as given, and with the scheme's default port (:443 / :80) added or taken away."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None or (port is not None and port != default):
        return [url]
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare = host[: -len(f":{port}")] if port is not None else host
    other = bare if port is not None else f"{bare}:{default}"
    return [url, urlunsplit(parts._replace(netloc=userinfo + other))]


TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)


def verify_secret_token(secret_token: str, header: str | None) -> bool:
    """Telegram's scheme: no signature, the header repeats the `secret_token` given to setWebhook verbatim."""
    if not header or not secret_token:
        return False
    return hmac.compare_digest(secret_token.encode(), header.encode())
