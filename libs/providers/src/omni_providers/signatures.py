"""One signature helper per scheme; every comparison is constant-time."""

import hashlib
import hmac

OMNI_SIGNATURE_HEADER = "X-Omni-Signature"


def hmac_sha256_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: the scheme of X-Omni-Signature (third-party) and Meta's X-Hub-Signature-256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hmac_sha256(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not secret:
        return False
    return hmac.compare_digest(hmac_sha256_signature(secret, body).encode(), header.strip().encode())
