"""API tokens (`api_tokens`, by the unique hash of their secret) and the audit log (`audit_log`, by time-ordered
`_id`) in MongoDB."""

from omni_router.adapters.documents import Database, Document, moment
from omni_router.domain.tokens import ApiToken, AuditEntry


def token_from_document(doc: Document) -> ApiToken:
    return ApiToken(
        id=doc["_id"],
        name=doc.get("name", ""),
        scopes=tuple(doc.get("scopes") or ()),
        token_hash=doc.get("token_hash", ""),
        created_at=moment(doc.get("created_at")),
    )


class MongoApiTokens:
    def __init__(self, db: Database) -> None:
        self._tokens = db.api_tokens

    async def add(self, token: ApiToken) -> None:
        await self._tokens.insert_one(
            {
                "_id": token.id,
                "name": token.name,
                "scopes": list(token.scopes),
                "token_hash": token.token_hash,
                "created_at": token.created_at,
            }
        )

    async def by_hash(self, token_hash: str) -> ApiToken | None:
        doc = await self._tokens.find_one({"token_hash": token_hash})
        return token_from_document(doc) if doc else None

    async def all(self, limit: int) -> list[ApiToken]:
        return [token_from_document(doc) for doc in await self._tokens.find().sort("_id", 1).limit(limit).to_list()]

    async def delete(self, token_id: str) -> bool:
        return bool((await self._tokens.delete_one({"_id": token_id})).deleted_count)


def entry_from_document(doc: Document) -> AuditEntry:
    actor = doc.get("actor") or {}
    at = moment(doc.get("at"))
    assert at is not None
    return AuditEntry(
        id=doc["_id"],
        at=at,
        token_id=actor.get("token_id"),
        name=actor.get("name"),
        method=doc.get("method", ""),
        path=doc.get("path", ""),
        target_id=doc.get("target_id"),
        status=int(doc.get("status", 0)),
    )


class MongoAuditLog:
    def __init__(self, db: Database) -> None:
        self._log = db.audit_log

    async def add(self, entry: AuditEntry) -> None:
        await self._log.insert_one(
            {
                "_id": entry.id,
                "at": entry.at,
                "actor": {"token_id": entry.token_id, "name": entry.name},
                "method": entry.method,
                "path": entry.path,
                "target_id": entry.target_id,
                "status": entry.status,
            }
        )

    async def page(self, before: str | None, limit: int) -> list[AuditEntry]:
        query: Document = {"_id": {"$lt": before}} if before else {}
        found = await self._log.find(query).sort("_id", -1).limit(limit).to_list()
        return [entry_from_document(doc) for doc in found]
