"""Named, revocable API tokens and what each may do: scopes, the bootstrap `ADMIN_TOKEN`, the caller as the admin
API knows it (a `Principal`), and the audit log's record of every admin write."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from omni_router.domain.views import iso

Scope = Literal["admin", "reports:read"]
# `admin` is everything under /api/admin; the others each open a few read endpoints (API.md).
SCOPES: tuple[Scope, ...] = ("admin", "reports:read")
ADMIN: Scope = "admin"
BOOTSTRAP_NAME = "ADMIN_TOKEN"


class TokenSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as stored: its hash, never the token."""

    id: str
    name: str
    scopes: tuple[str, ...]
    token_hash: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls the admin API: an API token (`token_id`), or the bootstrap ADMIN_TOKEN (`token_id` None)."""

    token_id: str | None
    name: str
    scopes: tuple[str, ...]

    def may(self, scope: str) -> bool:
        """`admin` opens everything; any other scope opens what names it."""
        return ADMIN in self.scopes or scope in self.scopes


BOOTSTRAP = Principal(None, BOOTSTRAP_NAME, SCOPES)


def principal_of(token: ApiToken) -> Principal:
    return Principal(token.id, token.name, token.scopes)


def token_view(token: ApiToken) -> dict[str, Any]:
    """A token as answered: never the token or its hash."""
    return {"id": token.id, "name": token.name, "scopes": list(token.scopes), "created_at": iso(token.created_at)}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin write, as it was answered: who (None: a caller not identified), what, on which item, the status.
    Never a body, a query or a token."""

    id: str
    at: datetime
    token_id: str | None
    name: str | None
    method: str
    path: str
    target_id: str | None
    status: int


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": {"token_id": entry.token_id, "name": entry.name},
        "method": entry.method,
        "path": entry.path,
        "target_id": entry.target_id,
        "status": entry.status,
    }
