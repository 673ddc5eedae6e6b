"""Signed, expiring links to our files, for messengers that fetch an attachment by URL (Graph, Twilio, third-party).

A link is `{PUBLIC_BASE_URL}/media/{token}` with token `<file id>.<expiry, epoch seconds>.<signature>`, the
signature being base64url(HMAC-SHA256(MEDIA_SIGNING_KEY, "omni-media-v1:<file id>.<expiry>")). The dispatcher
makes them; ingress serves the one file a valid token names, until it expires, and nothing else.
"""

import base64
import hashlib
import hmac
import re

from omni_runtime.settings import Settings

SCHEME = b"omni-media-v1:"
# Our file ids (GridFS ObjectIds as hex) and whatever else is id-like; never a dot, which separates the parts.
_FILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOKEN = re.compile(r"^([A-Za-z0-9_-]{1,64})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")


class MediaTokenInvalid(Exception):
    """Not a token we signed (malformed, or the signature does not hold)."""


class MediaTokenExpired(Exception):
    """A token we signed, past its expiry."""


class MediaLinks:
    def __init__(self, key: str, ttl_seconds: int, base_url: str) -> None:
        if not key:
            raise ValueError("a media signing key is required")
        self._key = key.encode()
        self._ttl = ttl_seconds
        self._base = base_url.rstrip("/")

    def url_for(self, file_id: str, now: float) -> str:
        """The link to `file_id`, working until `now` + the TTL."""
        return f"{self._base}/media/{self.token_for(file_id, int(now) + self._ttl)}"

    def token_for(self, file_id: str, expires: int) -> str:
        if not _FILE_ID.fullmatch(file_id):
            raise ValueError(f"{file_id!r} is not a file id a media link can carry")
        return f"{file_id}.{expires}.{self._sign(file_id, expires)}"

    def file_of(self, token: str, now: float) -> str:
        """The file id a token names; MediaTokenInvalid unless we signed it, MediaTokenExpired once it expired."""
        found = _TOKEN.fullmatch(token)
        if found is None:
            raise MediaTokenInvalid("not a media token")
        file_id, expires, signature = found.group(1), int(found.group(2)), found.group(3)
        if not hmac.compare_digest(self._sign(file_id, expires).encode(), signature.encode()):
            raise MediaTokenInvalid("the media token's signature does not hold")
        if now >= expires:
            raise MediaTokenExpired("the media link has expired")
        return file_id

    def _sign(self, file_id: str, expires: int) -> str:
        digest = hmac.new(self._key, SCHEME + f"{file_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def media_links(settings: Settings) -> MediaLinks | None:
    """The links of this deployment (MEDIA_SIGNING_KEY, MEDIA_URL_TTL_SECONDS, PUBLIC_BASE_URL); None without a key."""
    key = settings.media_signing_key
    if key is None:
        return None
    return MediaLinks(key.get_secret_value(), settings.media_url_ttl_seconds, settings.public_base_url)
