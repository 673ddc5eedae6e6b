"""Who may call the admin API: the bootstrap ADMIN_TOKEN (every scope) and named API tokens with scopes, created
(answered once, only the hash stored), listed and revoked; and the audit log of every admin write."""

import hmac

from omni_router.domain.access import new_token, token_hash
from omni_router.domain.errors import Forbidden, NotFound, Unauthorized
from omni_router.domain.tokens import (
    BOOTSTRAP,
    ApiToken,
    AuditEntry,
    Principal,
    TokenSettings,
    principal_of,
)
from omni_router.service_layer.ports import ApiTokens, AuditLog, Clock, Operators

LIST_LIMIT = 1000
AUDIT_PAGE_MAX = 1000


class Tokens:
    def __init__(self, *, tokens: ApiTokens, operators: Operators, admin_token: str | None, clock: Clock) -> None:
        self._tokens = tokens
        self._operators = operators
        self._admin_token = admin_token
        self._clock = clock

    async def identify(self, token: str) -> Principal:
        """The caller a bearer token names: the bootstrap token, an API token (read afresh: a revoked one is refused
        at once); an operator's token is Forbidden; anything else Unauthorized."""
        if self._admin_token is not None and hmac.compare_digest(token.encode(), self._admin_token.encode()):
            return BOOTSTRAP
        hashed = token_hash(token)
        found = await self._tokens.by_hash(hashed)
        if found is not None:
            return principal_of(found)
        if await self._operators.by_token(hashed) is not None:
            raise Forbidden("forbidden", "operator tokens cannot use the admin API")
        raise Unauthorized("unauthorized", "unknown or revoked token")

    @staticmethod
    def check(principal: Principal, scope: str) -> None:
        """Forbidden (`insufficient_scope`) unless the caller's scopes open `scope`."""
        if not principal.may(scope):
            held = ", ".join(principal.scopes)
            raise Forbidden("insufficient_scope", f"this token's scopes ({held}) do not include {scope}")

    async def create(self, body: TokenSettings) -> tuple[ApiToken, str]:
        """The token, and its secret (answered this once: only its hash is stored)."""
        secret = new_token()
        token = ApiToken(
            id=self._clock.new_id(),
            name=body.name,
            scopes=tuple(dict.fromkeys(body.scopes)),
            token_hash=token_hash(secret),
            created_at=self._clock.now(),
        )
        await self._tokens.add(token)
        return token, secret

    async def list(self) -> list[ApiToken]:
        return await self._tokens.all(LIST_LIMIT)

    async def revoke(self, token_id: str) -> None:
        if not await self._tokens.delete(token_id):
            raise NotFound("not_found", f"no token {token_id}")


class Audit:
    def __init__(self, log: AuditLog, clock: Clock) -> None:
        self._log = log
        self._clock = clock

    async def record(
        self, actor: Principal | None, method: str, path: str, target_id: str | None, status: int
    ) -> AuditEntry:
        entry = AuditEntry(
            id=self._clock.new_id(),
            at=self._clock.now(),
            token_id=actor.token_id if actor else None,
            name=actor.name if actor else None,
            method=method,
            path=path,
            target_id=target_id,
            status=status,
        )
        await self._log.add(entry)
        return entry

    async def page(self, cursor: str | None, limit: int) -> tuple[list[AuditEntry], str | None]:
        """Newest first, `limit` of them after `cursor`; the cursor of the next page (None: no more)."""
        limit = max(1, min(limit, AUDIT_PAGE_MAX))
        entries = await self._log.page(cursor, limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        return entries, (entries[-1].id if more else None)
