"""Bearer tokens: operators by the hash of their token, the admin by ADMIN_TOKEN."""

import hashlib
import hmac
import secrets

from pydantic import SecretStr
from starlette.requests import Request

from omni_runtime.database import Database, Document
from omni_runtime.web import ApiError


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "a bearer token is required")
    return token.strip()


async def operator_of(request: Request, db: Database) -> Document:
    token = bearer(request)
    operator = await db.operators.find_one({"token_hash": token_hash(token)})
    if operator is None:
        raise ApiError(401, "unauthorized", "unknown token")
    return operator


async def require_admin(request: Request, db: Database, admin_token: SecretStr | None) -> None:
    token = bearer(request)
    if admin_token is not None and hmac.compare_digest(token.encode(), admin_token.get_secret_value().encode()):
        return
    if await db.operators.find_one({"token_hash": token_hash(token)}, {"_id": 1}) is not None:
        raise ApiError(403, "forbidden", "operator tokens cannot use the admin API")
    raise ApiError(401, "unauthorized", "unknown token")
