"""Pushing a signed third-party webhook to ingress, as a provider would."""

import json
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from omni_providers.signatures import OMNI_SIGNATURE_HEADER, hmac_sha256_signature


class ThirdPartyPush(BaseModel):
    """`POST /_sim/push/thirdparty`: what to send where; `signature` replaces the computed one, to test rejection."""

    model_config = ConfigDict(extra="forbid")

    ingress_url: str = Field(pattern=r"^https?://")
    provider: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    secret: str | None = None
    # Any JSON, not only a valid UnifiedMessage, so tests can provoke ingress's 400s.
    message: Any
    signature: str | None = None
    omit_signature: bool = False

    @model_validator(mode="after")
    def _can_sign(self) -> "ThirdPartyPush":
        if self.secret is None and self.signature is None and not self.omit_signature:
            raise ValueError("secret is required unless signature or omit_signature is given")
        return self

    def signed(self) -> tuple[bytes, dict[str, str]]:
        """The exact bytes to send and the headers, X-Omni-Signature computed over those very bytes."""
        raw = json.dumps(self.message, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if not self.omit_signature:
            headers[OMNI_SIGNATURE_HEADER] = (
                self.signature if self.signature is not None else hmac_sha256_signature(self.secret or "", raw)
            )
        return raw, headers


async def push_thirdparty(http: httpx.AsyncClient, push: ThirdPartyPush) -> tuple[int, Any]:
    """POST the signed message to `{ingress_url}/webhooks/{provider}/receive`; ingress's status and body."""
    raw, headers = push.signed()
    url = f"{push.ingress_url.rstrip('/')}/webhooks/{push.provider}/receive"
    response = await http.post(url, content=raw, headers=headers)
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    return response.status_code, body
