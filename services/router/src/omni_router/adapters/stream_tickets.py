"""Stream tickets in MongoDB (`stream_tickets`): by the ticket's hash, deleted as they are spent or expire."""

from omni_router.adapters.documents import Database


class MongoStreamTickets:
    def __init__(self, db: Database) -> None:
        self._tickets = db.stream_tickets

    async def issue(self, ticket_hash: str, operator_id: str, expires_at: float, now: float) -> None:
        await self._tickets.delete_many({"expires_at": {"$lt": now}})
        await self._tickets.insert_one({"_id": ticket_hash, "operator_id": operator_id, "expires_at": expires_at})

    async def spend(self, ticket_hash: str) -> tuple[str, float] | None:
        spent = await self._tickets.find_one_and_delete({"_id": ticket_hash})
        return (spent["operator_id"], float(spent["expires_at"])) if spent else None
